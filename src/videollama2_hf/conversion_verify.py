# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`convert --verify`: reload a written folder with transformers and compare it with its sources bit for bit."""

import math
from pathlib import Path

from .safetensors_copy import Shard, SourceTensor, load_torch_file, torch_dtypes


def verify_conversion(folder: Path, shards: list[Shard]) -> dict:
    """Reload `folder` with `from_pretrained` (in the saved dtype), compare every tensor with its source bit for bit
    (source files read one at a time) and run one forward pass on a tiny image prompt."""
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    from .modeling_videollama2 import VideoLlama2ForConditionalGeneration

    dtypes = {tensor.dtype for shard in shards for tensor in shard.tensors}
    by_name = {name: dtype for dtype, name in torch_dtypes().items()}
    load_dtype = by_name[dtypes.pop()] if len(dtypes) == 1 else torch.float32  # mixed: exact upcast
    model, info = VideoLlama2ForConditionalGeneration.from_pretrained(
        folder, dtype=load_dtype, output_loading_info=True
    )
    state = revert_weight_conversion(model, model.state_dict())  # back to the on-disk (HF) names
    by_source: dict[Path, list[SourceTensor]] = {}
    for shard in shards:
        for tensor in shard.tensors:
            by_source.setdefault(tensor.path, []).append(tensor)
    missing, mismatched, max_diff, compared = [], [], 0.0, 0
    for path, tensors in by_source.items():
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(path, framework="pt") as handle:
                source = {tensor.source_key: handle.get_tensor(tensor.source_key) for tensor in tensors}
        else:
            source = load_torch_file(path)
        for tensor in tensors:
            loaded = state.pop(tensor.name, None)
            if loaded is None:
                missing.append(tensor.name)
                continue
            expected = source[tensor.source_key].to(load_dtype)
            compared += 1
            if loaded.shape != expected.shape or not torch.equal(loaded, expected):
                mismatched.append(tensor.name)
                if loaded.shape == expected.shape:
                    max_diff = max(max_diff, (loaded.double() - expected.double()).abs().max().item())
                else:
                    max_diff = math.inf
        del source
    config = model.config
    size = config.vision_config.image_size
    input_ids = torch.tensor([[1, 2, 3] + [config.image_token_id] * config.get_num_visual_tokens() + [4, 5]])
    pixel_values = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    forward_dtype = str(model.dtype).removeprefix("torch.")
    with torch.inference_mode():
        try:
            logits = model(input_ids=input_ids, pixel_values=pixel_values.to(model.dtype), logits_to_keep=1).logits
        except NotImplementedError as error:  # e.g. CPU AvgPool3d (stp_connector) has no bfloat16 kernel
            model.float()  # the bit-level comparison is done; upcasting is exact
            forward_dtype = f"float32 ({forward_dtype} failed: {str(error)[:120]})"
            logits = model(input_ids=input_ids, pixel_values=pixel_values, logits_to_keep=1).logits
    report = {
        "tensors_compared": compared,
        "max_abs_diff": max_diff,
        "mismatched": mismatched,
        "missing_keys": sorted(set(missing) | set(info["missing_keys"])),
        "unexpected_keys": sorted(set(state) | set(info["unexpected_keys"])),
        "dtype": str(load_dtype).removeprefix("torch."),
        "forward_dtype": forward_dtype,
        "forward_logits_shape": list(logits.shape),
        "forward_finite": bool(torch.isfinite(logits).all()),
    }
    report["ok"] = not (mismatched or report["missing_keys"] or report["unexpected_keys"]) and report["forward_finite"]
    del model, state
    return report
