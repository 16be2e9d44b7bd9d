"""A keypoint GFVC model without training: the decoder warps the key frame by one affine motion.

Keypoints: the frame is cut into ``grid`` x ``grid`` cells and each cell's keypoint is the centroid of
its edge energy (squared gradient of the grey image), in pixels. The generator fits, by least squares,
the affine map from the current frame's keypoints to the key frame's and samples the key frame there,
so a head that moves, turns a little or comes closer moves the whole picture with it.

The harness's GFVC pipeline does the rest: it codes the key frame with its picture codec and each
frame's keypoints as ``round((keypoints - previous reconstructed keypoints) * q_step)`` with the GFVC
common software's entropy coder, so ``q_step`` 4 is a quarter of a pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional

from models.base import GenerativeModel

RIDGE = 1e-6  # keeps the least-squares system solvable when the keypoints are nearly collinear


class AffineKeypointModel(GenerativeModel):
    name = "affine_keypoints"

    def __init__(self, grid: int, device: str = "cpu") -> None:
        if grid < 2:
            raise ValueError(f"{self.name}: grid {grid}: an affine motion needs at least 2 x 2 keypoints")
        self.grid = grid
        self.feature_size = 2 * grid * grid
        self.device = torch.device(device)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], weights: str, device: str = "cpu") -> AffineKeypointModel:
        """No learned weights (the config lists no ``checkpoint_files``): ``weights`` is ``none``."""
        return cls(int(config["model_params"]["grid"]), device)

    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 2 * grid²)``: each cell's edge-energy centroid (x, y) in pixels."""
        grey = frames.to(self.device, torch.float64).mean(1, keepdim=True)
        dx = functional.pad(grey[..., :, 1:] - grey[..., :, :-1], (0, 1))
        dy = functional.pad(grey[..., 1:, :] - grey[..., :-1, :], (0, 0, 0, 1))
        energy = dx**2 + dy**2 + 1e-8  # a flat cell's centroid is its centre
        height, width = grey.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float64, device=self.device),
            torch.arange(width, dtype=torch.float64, device=self.device),
            indexing="ij",
        )
        mass = functional.adaptive_avg_pool2d(energy, self.grid)
        x = functional.adaptive_avg_pool2d(energy * xs, self.grid) / mass
        y = functional.adaptive_avg_pool2d(energy * ys, self.grid) / mass
        return torch.stack([x.flatten(1), y.flatten(1)], dim=-1).flatten(1).float()

    def prepare_reference(self, key_frame: torch.Tensor) -> torch.Tensor:
        return self.extract_features(key_frame)

    def generate(
        self, key_frame: torch.Tensor, reference: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        """Each frame: the key frame sampled at the affine map of its keypoints onto the key frame's."""
        height, width = key_frame.shape[-2:]
        current = self._normalised(features, width, height)
        target = self._normalised(reference, width, height).expand_as(current)
        design = torch.cat([current, torch.ones_like(current[..., :1])], dim=-1)  # (B, K, 3)
        normal = design.transpose(1, 2) @ design + RIDGE * torch.eye(3, dtype=design.dtype)
        theta = torch.linalg.solve(normal, design.transpose(1, 2) @ target).transpose(1, 2)  # (B, 2, 3)
        grid = functional.affine_grid(theta.float(), [len(features), 3, height, width], align_corners=False)
        source = key_frame.to(self.device).float().expand(len(features), -1, -1, -1)
        return functional.grid_sample(
            source, grid, mode="bilinear", padding_mode="border", align_corners=False
        )

    def _normalised(self, features: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Keypoints ``(B, K, 2)`` in grid_sample's coordinates (-1 and 1 at the frame's outer edges)."""
        points = features.to(self.device, torch.float64).view(len(features), -1, 2)
        scale = torch.tensor([width, height], dtype=torch.float64, device=self.device)
        return (2 * points + 1) / scale - 1
