# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Peak memory of media preprocessing against the length of the input: it should not grow with it.

Inputs, generated in a temporary folder:
- audio files: 48 kHz stereo 16-bit WAV of noise, 1 min / 10 min / 2 h (2 h is 1.3 GB on disk);
- videos: 640x360 H.264 at 25 fps (a key frame every 10 s), 1 min / 1 h; the hour is the minute's packets muxed
  60 times with shifted timestamps, which FFmpeg reads as one hour-long video.
Each case runs in a fresh Python process, after its imports: the audio preprocessing of an audio-visual model
(`VideoLlama2FeatureExtractor()(load_audio(path))`, the centred 30 s at 16 kHz -> (1, 2998, 128) filterbank), and the
video processor at 16 frames (`VideoLlama2VideoProcessor(num_frames=16)(path)`, decoding and 336x336 pixels). Peak RSS
is the process's high-water mark (VmHWM), reset after the imports (/proc/self/clear_refs); "growth" is that peak over
the RSS after the imports. Writes the "## Media memory" section of docs/benchmarks.md with --write.

    python bench/media_memory.py [--write]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np


SECTION = "## Media memory"
AUDIO_MINUTES = (1, 10, 120)
VIDEO_MINUTES = (1, 60)
NUM_FRAMES = 16
GOAL_MIB = 50  # the goal: within 50 MB of the 1-minute figure


def _write_wav(path: Path, minutes: int) -> Path:
    """48 kHz stereo 16-bit noise, written a second at a time (one second repeated)."""
    second = np.random.default_rng(0).integers(-20000, 20000, (48000, 2), dtype=np.int16).tobytes()
    with wave.open(str(path), "wb") as file:
        file.setnchannels(2)
        file.setsampwidth(2)
        file.setframerate(48000)
        for _ in range(60 * minutes):
            file.writeframesraw(second)
    return path


def _write_videos(folder: Path) -> dict[int, Path]:
    """A minute of moving 640x360 H.264, and the same packets repeated to make the longer videos."""
    import av

    minute = folder / "video-1min.mp4"
    with av.open(str(minute), mode="w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "250"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        x = np.arange(640)[None, :] + np.arange(360)[:, None]
        for index in range(25 * 60):
            frame = np.stack([(x + 3 * index) % 256, (x // 2 + index) % 256, np.full_like(x, index % 256)], axis=-1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    paths = {1: minute}
    for minutes in VIDEO_MINUTES[1:]:
        paths[minutes] = path = folder / f"video-{minutes}min.mp4"
        with av.open(str(minute)) as source, av.open(str(path), mode="w") as target:
            template = source.streams.video[0]
            stream = target.add_stream_from_template(template)
            packets = [packet for packet in source.demux(template) if packet.size]
            shift = int(Fraction(60) / template.time_base)  # one minute in the stream's time base
            for copy in range(minutes):
                for packet in packets:
                    repeated = av.Packet(bytes(packet))
                    repeated.pts, repeated.dts = packet.pts + copy * shift, packet.dts + copy * shift
                    repeated.time_base, repeated.is_keyframe, repeated.stream = (
                        template.time_base,
                        packet.is_keyframe,
                        stream,
                    )
                    target.mux(repeated)
    return paths


def _child(kind: str, path: str) -> None:
    """Runs in a fresh process: one preprocessing of `path`, then its memory and time as JSON on stdout."""
    from common import _status_mib

    if kind == "audio":
        from videollama2_hf.audio_decoding_videollama2 import load_audio
        from videollama2_hf.feature_extraction_videollama2 import VideoLlama2FeatureExtractor

        extractor = VideoLlama2FeatureExtractor()

        def run():
            return extractor(load_audio(path), sampling_rate=16000, return_tensors="pt")["input_features"].shape

    else:
        from videollama2_hf.video_processing_videollama2 import VideoLlama2VideoProcessor

        processor = VideoLlama2VideoProcessor(num_frames=NUM_FRAMES)

        def run():
            return processor(path, return_tensors="pt")["pixel_values_videos"].shape

    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the high-water mark starts again from the RSS after the imports
    baseline = _status_mib("VmRSS")
    began = time.perf_counter()
    shape = run()
    seconds = time.perf_counter() - began
    peak = _status_mib("VmHWM")
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds, "shape": list(shape)}))


def _measure(kind: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode:
        sys.exit(f"the {kind} case on {path.name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(rows: list[tuple[str, str, dict]]) -> str:
    lines = [
        "| input | size on disk | peak RSS (MiB) | growth over imports (MiB) | vs 1 minute (MiB) | time (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    first = rows[0][2]["peak"] - rows[0][2]["baseline"]
    for name, size, result in rows:
        growth = result["peak"] - result["baseline"]
        lines.append(
            f"| {name} | {size} | {result['peak']:.0f} | {growth:.0f} | {growth - first:+.0f} | "
            f"{result['seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update the section of docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    import av
    import transformers
    from common import machine, write_section

    def size(path: Path) -> str:
        return f"{path.stat().st_size / 2**20:,.0f} MiB"

    audio_rows, video_rows = [], []
    with tempfile.TemporaryDirectory(prefix="videollama2-media-memory-") as folder:
        folder = Path(folder)
        for minutes in AUDIO_MINUTES:
            path = _write_wav(folder / f"audio-{minutes}min.wav", minutes)
            name = f"{minutes // 60} h" if minutes >= 60 else f"{minutes} min"
            audio_rows.append((f"{name} WAV, 48 kHz stereo", size(path), _measure("audio", path)))
            print(audio_rows[-1], flush=True)
            path.unlink()  # the 2-hour file is 1.3 GB
        for minutes, path in _write_videos(folder).items():
            name = f"{minutes // 60} h" if minutes >= 60 else f"{minutes} min"
            video_rows.append((f"{name} H.264 640x360, 25 fps", size(path), _measure("video", path)))
            print(video_rows[-1], flush=True)
    worst = max(
        rows[-1][2]["peak"] - rows[-1][2]["baseline"] - (rows[0][2]["peak"] - rows[0][2]["baseline"])
        for rows in (audio_rows, video_rows)
    )
    body = f"""{SECTION}

Peak memory against the length of the input, `bench/media_memory.py`: each case in a fresh process, the peak RSS
(VmHWM) reset after the imports, "growth" over the RSS after the imports. Inputs generated by the script: 48 kHz
stereo 16-bit WAV of noise; 640x360 H.264 at 25 fps with a key frame every 10 s (the hour is the minute's packets
repeated). Machine: {machine()}; transformers {transformers.__version__}, PyAV {av.__version__}. Goal: flat, within
{GOAL_MIB} MB of the 1-minute figure; here the largest difference is {worst:+.0f} MiB.

Audio preprocessing of an audio-visual model, `VideoLlama2FeatureExtractor()(load_audio(path))` (the centred 30 s,
resampled to 16 kHz, (1, 2998, 128) filterbank). Only that window is kept: a first pass counts the samples, a
second decodes the window (after a seek, for WAV); the whole file decoded to float64 first, as before, peaked at
6.27 GB for the 2-hour file (issue 16's measurement).

{_table(audio_rows)}

Video processor at {NUM_FRAMES} frames, `VideoLlama2VideoProcessor(num_frames={NUM_FRAMES})(path)` (decoding and
336x336 pixels): the packet index grows with the length (a few numbers per frame), the decoded frames do not.

{_table(video_rows)}
"""
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
