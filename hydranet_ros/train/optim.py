"""Optimiser with separate encoder / decoder+heads groups, and the learning-rate schedule.

A pretrained encoder wants a small learning rate (large steps destroy what it learned on
ImageNet); the freshly initialised decoder and heads want a large one. The learned task-weighting
parameters train with the decoder's rate and no weight decay (decay would pull every task's
log-variance towards 0, i.e. towards equal weights, which is not a prior we want).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hydranet_ros.train.config import OptimConfig, ScheduleConfig


def build_optimizer(*, model: nn.Module, weighting: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]  # type: ignore[union-attr]
    encoder_ids = {id(p) for p in encoder_params}
    decoder_params = [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids]
    groups = [
        {"name": "encoder", "params": encoder_params, "lr": config.encoder_lr,
         "weight_decay": config.encoder_weight_decay, "base_lr": config.encoder_lr},
        {"name": "decoder", "params": decoder_params, "lr": config.decoder_lr,
         "weight_decay": config.decoder_weight_decay, "base_lr": config.decoder_lr},
    ]
    weighting_params = [p for p in weighting.parameters() if p.requires_grad]
    if weighting_params:
        groups.append({"name": "task_weighting", "params": weighting_params, "lr": config.decoder_lr,
                       "weight_decay": 0.0, "base_lr": config.decoder_lr})
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups)
    return torch.optim.SGD(groups, momentum=config.momentum, nesterov=config.momentum > 0)


def lr_factor(step: int, config: ScheduleConfig) -> float:
    """Multiplier of the base learning rates at ``step`` (0-based, the step about to be taken).

    Linear warm-up from 1/warmup to 1 over ``warmup_steps``, then poly (1 - progress)^power or
    half a cosine, both decaying to ``min_lr_factor`` at ``steps``.
    """
    warmup = config.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    span = max(config.steps - warmup, 1)
    progress = min(max((step - warmup) / span, 0.0), 1.0)
    if config.kind == "poly":
        decay = (1.0 - progress) ** config.power
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_factor + (1.0 - config.min_lr_factor) * decay


def apply_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
