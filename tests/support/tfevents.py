"""Scalars of TensorBoard event files, read without TensorFlow or the tensorboard package (not installed
here: transformers writes the files with tensorboardX). An event file is a TFRecord stream: per record a
little-endian u64 length, a u32 CRC of it, the serialized ``Event`` and a u32 CRC of that."""

from __future__ import annotations

import struct
from pathlib import Path


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] over every ``events.out.tfevents.*`` file below ``folder``."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
