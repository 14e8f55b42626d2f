# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLlama2FeatureExtractor against the original's filterbanks (the AV fixture's bfloat16 `fbank` tensors) and
against transformers' own numpy Kaldi filterbank (`audio_utils`), an independent implementation.

About bit-exactness: the extractor runs torchaudio's Kaldi fbank operations in the same order and dtypes (checked
bit for bit against torchaudio 2.2 on the same machine while developing it). What still differs between machines are
the last bits of MKL's FFT, matrix product and logarithm, which decide the bfloat16 rounding of values sitting on a
rounding tie: the fixture's machine rounded 9 (video audio) and 5 (audio file) of 383744 values the other way than
this machine's default MKL code path does, and with MKL's vendor-neutral code path (`MKL_CBWR=COMPATIBLE`) the audio
file's filterbank is bit-exact.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function
from videollama2_test_utils import AV_VARIANT

from videollama2_hf import VideoLlama2AudioEncoderConfig, num_audio_tokens
from videollama2_hf.audio_decoding_videollama2 import clip_sample_ranges, load_audio
from videollama2_hf.feature_extraction_videollama2 import (
    VideoLlama2FeatureExtractor,
    kaldi_fbank,
    kaldi_mel_filters,
)


MAX_TIES = 16  # values per 2998 x 128 filterbank allowed to round to the other neighbour of a bfloat16 tie
TIE_DISTANCE = 2.5e-4  # how close to the midpoint of two bfloat16 values such a value must be (measured: <= 8.4e-5)

# Kaldi's 128 filters on a 512-point FFT: filter 3 is narrower than a frequency bin and empty (as in the original,
# where its log-energy is the floor); transformers' reference filter bank warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")


@pytest.fixture(scope="module")
def fixture_tensors(fixtures_dir):
    return load_file(fixtures_dir / AV_VARIANT / "reference.safetensors")


@pytest.fixture(scope="module")
def fixture_waveforms(fixture_tensors, media_dir):
    """The original's fbank inputs: the clips of the fixture's decoded PCM (float32) and the wav file (float64)."""
    pcm = fixture_tensors["av.audio_decoded_int16"].numpy()
    clips = np.concatenate([pcm[start:end] for start, end in clip_sample_ranges(len(pcm))])
    return {"av": clips.astype(np.float32) / 32768, "audio": load_audio(media_dir / "bird-twitter-car.wav")}


def assert_equal_up_to_rounding_ties(waveform, expected):
    """`expected` (bfloat16) equals our rounded filterbank except at a few values whose unrounded version sits on the
    midpoint of the two bfloat16 neighbours, where the other rounding is one ulp away."""
    unrounded = VideoLlama2FeatureExtractor(round_to_bfloat16=False)(waveform, sampling_rate=16000)
    unrounded = torch.from_numpy(unrounded["input_features"][0])
    features = torch.from_numpy(VideoLlama2FeatureExtractor()(waveform, sampling_rate=16000)["input_features"][0])
    assert torch.equal(features, unrounded.to(torch.bfloat16).float())
    expected = expected.float()
    differ = features != expected
    assert differ.sum() <= MAX_TIES
    neighbours = torch.stack([features[differ], expected[differ]])
    assert torch.equal(neighbours[0].to(torch.bfloat16).float(), neighbours[0])
    assert torch.equal(torch.nextafter(neighbours[0].bfloat16(), neighbours[1].bfloat16()).float(), neighbours[1])
    assert ((unrounded[differ] - neighbours.mean(dim=0)).abs() <= TIE_DISTANCE).all()


@pytest.mark.parametrize("case", ["av", "audio"])
def test_fbank_matches_the_original(case, fixture_tensors, fixture_waveforms):
    """av: float32 features of the video's clips; audio: float64 features of the resampled wav file."""
    features = VideoLlama2FeatureExtractor()(fixture_waveforms[case], sampling_rate=16000, return_tensors="pt")
    assert features["input_features"].shape == fixture_tensors[f"{case}.fbank"].shape == (1, 2998, 128)
    assert features["input_features"].dtype == torch.float32
    assert_equal_up_to_rounding_ties(fixture_waveforms[case], fixture_tensors[f"{case}.fbank"][0])


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="MKL_CBWR selects an MKL code path")
def test_fbank_is_bit_exact_on_mkls_vendor_neutral_code_path(fixtures_dir, media_dir):
    """The audio file's float64 filterbank only depends on the float32 mel filters, whose logarithm comes from MKL:
    with MKL's reproducible code path (as on the fixture's machine) every value matches, in a fresh process. Checked
    with the MKL of torch 2.14.1 and of torch 2.2.0 (the original's, through torchaudio itself)."""
    script = (
        "import sys, torch; from safetensors.torch import load_file;"
        "from videollama2_hf import VideoLlama2FeatureExtractor;"
        "from videollama2_hf.audio_decoding_videollama2 import load_audio;"
        "expected = load_file(sys.argv[1])['audio.fbank'];"
        "features = VideoLlama2FeatureExtractor()(load_audio(sys.argv[2]), sampling_rate=16000, return_tensors='pt');"
        "print(int((features['input_features'] != expected.float()).sum()))"
    )
    reference, wav = fixtures_dir / AV_VARIANT / "reference.safetensors", media_dir / "bird-twitter-car.wav"
    result = subprocess.run(
        [sys.executable, "-c", script, reference, wav],
        env={**os.environ, "MKL_CBWR": "COMPATIBLE"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split()[-1] == "0"


def test_mel_filters_match_transformers_kaldi_mel_filter_bank():
    expected = mel_filter_bank(
        num_frequency_bins=257,
        num_mel_filters=128,
        min_frequency=20,
        max_frequency=8000,
        sampling_rate=16000,
        norm=None,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )
    filters = kaldi_mel_filters(128, 512, 16000)
    assert filters.dtype == torch.float32  # as Kaldi and torchaudio build them, whatever the waveform's dtype
    np.testing.assert_allclose(filters.numpy().T, expected, rtol=0, atol=5e-5)


def test_fbank_matches_transformers_numpy_kaldi_spectrogram():
    """transformers' float64 numpy path (the one ASTFeatureExtractor uses without torchaudio), with Kaldi's Povey
    window, pre-emphasis, DC removal and float32-epsilon floor."""
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 3) * 2**15
    filters = mel_filter_bank(257, 128, 20, 8000, 16000, None, "kaldi", triangularize_in_mel_space=True)
    expected = spectrogram(
        waveform,
        window_function(400, "povey", periodic=False),
        frame_length=400,
        hop_length=160,
        fft_length=512,
        power=2.0,
        center=False,
        preemphasis=0.97,
        mel_filters=filters,
        log_mel="log",
        mel_floor=np.finfo(np.float32).eps,
        remove_dc_offset=True,
    ).T
    features = kaldi_fbank(torch.from_numpy(waveform), 128, 16000)
    assert features.shape == expected.shape == (298, 128)
    np.testing.assert_allclose(features.numpy(), expected, rtol=0, atol=2e-4)


def test_precision_follows_the_waveform_dtype():
    """float64 (audio files) and float32 (video audio) are computed in their own dtype, as the original does; int16
    PCM is read as the video path reads it."""
    waveform = np.random.default_rng(1).uniform(-0.5, 0.5, 16000 * 2)
    extractor = VideoLlama2FeatureExtractor(round_to_bfloat16=False)
    as_float64 = extractor(waveform, sampling_rate=16000)["input_features"][0]
    as_float32 = extractor(waveform.astype(np.float32), sampling_rate=16000)["input_features"][0]
    float64_fbank = kaldi_fbank(torch.from_numpy(np.pad(waveform, (0, 448000))) * 2**15, 128, 16000)
    np.testing.assert_array_equal(as_float64, float64_fbank.float().numpy())
    assert not np.array_equal(as_float64, as_float32)
    np.testing.assert_allclose(as_float64, as_float32, rtol=0, atol=1e-3)
    pcm = (waveform * 32768).astype(np.int16)
    np.testing.assert_array_equal(
        extractor(pcm, sampling_rate=16000)["input_features"][0],
        extractor(pcm.astype(np.float32) / 32768, sampling_rate=16000)["input_features"][0],
    )


def test_output_is_bfloat16_values_in_float32():
    waveform = np.random.default_rng(2).uniform(-0.5, 0.5, 16000)
    features = VideoLlama2FeatureExtractor()(waveform, sampling_rate=16000, return_tensors="pt")["input_features"]
    assert features.dtype == torch.float32
    assert torch.equal(features.bfloat16().float(), features)
    unrounded = VideoLlama2FeatureExtractor(round_to_bfloat16=False)(waveform, sampling_rate=16000)
    assert not np.array_equal(unrounded["input_features"][0], features[0].numpy())


def test_batches_and_input_types():
    rng = np.random.default_rng(3)
    short, long = rng.uniform(-0.5, 0.5, 8000), rng.uniform(-0.5, 0.5, 16000 * 31)
    extractor = VideoLlama2FeatureExtractor()
    batch = extractor([short, long], sampling_rate=16000, return_tensors="pt")["input_features"]
    assert batch.shape == (2, 2998, 128)
    assert torch.equal(batch[0], extractor(short, sampling_rate=16000, return_tensors="pt")["input_features"][0])
    centred = long[8000 : 8000 + 480000]  # longer than 30 s: the centred 30 s
    assert torch.equal(batch[1], extractor(centred, sampling_rate=16000, return_tensors="pt")["input_features"][0])
    from_tensor = extractor(torch.from_numpy(short), sampling_rate=16000, return_tensors="np")["input_features"]
    from_list = extractor(short.tolist(), sampling_rate=16000, return_tensors="np")["input_features"]
    from_2d = extractor(np.stack([short, short]), sampling_rate=16000, return_tensors="np")["input_features"]
    assert isinstance(from_tensor, np.ndarray) and from_tensor.shape == (1, 2998, 128)
    np.testing.assert_array_equal(from_tensor, batch[:1].numpy())
    np.testing.assert_array_equal(from_list, batch[:1].numpy())
    np.testing.assert_array_equal(from_2d, batch[[0, 0]].numpy())
    assert list(extractor(short, sampling_rate=16000).keys()) == ["input_features"]  # no mask: BEATs attends to all


def test_token_count():
    extractor = VideoLlama2FeatureExtractor()
    assert (extractor.num_samples, extractor.num_frames) == (480000, 2998)
    assert num_audio_tokens(extractor.num_frames, extractor.feature_size, 16) == 1496
    assert VideoLlama2AudioEncoderConfig().get_num_audio_tokens(extractor.num_frames) == 187 * 8
    with pytest.raises(ValueError, match="smaller than one 16 x 16 patch"):
        num_audio_tokens(15, 128, 16)


def test_user_errors():
    extractor = VideoLlama2FeatureExtractor()
    with pytest.raises(ValueError, match="sampled at 44100 Hz but this feature extractor expects 16000 Hz"):
        extractor(np.zeros(100), sampling_rate=44100)
    with pytest.raises(ValueError, match="1-D mono waveform or a \\(batch, samples\\) array"):
        extractor(np.zeros((1, 2, 100)), sampling_rate=16000)
    with pytest.raises(ValueError, match="must be 1-D mono, got shape \\(100, 2\\)"):
        extractor([np.zeros((100, 2))], sampling_rate=16000)
    with pytest.raises(ValueError, match="empty"):
        extractor(np.zeros(0), sampling_rate=16000)
    with pytest.raises(ValueError, match="Unsupported waveform dtype int32"):
        extractor(np.zeros(100, dtype=np.int32), sampling_rate=16000)
    with pytest.raises(TypeError, match="Unsupported audio input of type str.*load_audio"):
        extractor("speech.wav", sampling_rate=16000)


def test_save_and_load(tmp_path):
    extractor = VideoLlama2FeatureExtractor(max_duration_s=10, round_to_bfloat16=False)
    extractor.save_pretrained(tmp_path)
    loaded_directly = VideoLlama2FeatureExtractor.from_pretrained(tmp_path)
    for loaded in (loaded_directly, AutoFeatureExtractor.from_pretrained(tmp_path)):
        assert isinstance(loaded, VideoLlama2FeatureExtractor)
        assert loaded.to_dict() == extractor.to_dict()
        assert (loaded.num_frames, loaded.round_to_bfloat16) == (998, False)
