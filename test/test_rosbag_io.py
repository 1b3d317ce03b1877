"""rosbag2 round trips (sqlite3 and mcap), pairing by stamp, encodings and error messages."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from test_data_fakes import colour, make_folder, require_shared
from training import bag_info, make_bag
from training.data.readers import load_samples
from training.data.bag_messages import (IMAGE, BagError, decode_compressed, decode_image,
                                        to_rgb, typestore)
from training.data.bag_pairing import BagStats
from training.data.bag_writer import DEPTH_TOPIC, INFO_TOPIC, RGB_TOPIC, BagFrame, write_bag
from training.data.rosbag_io import iter_bag_samples, read_bag_samples

K = np.array([[30.0, 0, 15.5], [0, 31.0, 11.5], [0, 0, 1]])


def frames(count: int = 4, float_depth: bool = False, rgb_shape=(24, 32)) -> list:
    """Distinct exact millimetres per frame and pixel (a ramp, not a room), so the round trip
    can show that frame i came back with its own values and RGB, one hole at (3, 4)."""
    out = []
    for index in range(count):
        mm = (800 + 7 * np.arange(24 * 32).reshape(24, 32) + index).astype(np.uint16)
        mm[3, 4] = 0
        depth = mm
        if float_depth:
            depth = mm.astype(np.float32) / 1000
            depth[3, 4] = np.nan
        out.append(BagFrame(depth=depth, rgb=colour(*rgb_shape, index), intrinsics=K))
    return out


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('float_depth', [False, True])
def test_round_trip_pixels_stamps_pairing(tmp_path, storage, float_depth):
    written = frames(float_depth=float_depth)
    counts = write_bag(tmp_path / 'bag', written, storage=storage, rate=20.0, start=100.0)
    assert counts == {DEPTH_TOPIC: 4, RGB_TOPIC: 4, INFO_TOPIC: 4}
    samples, stats = read_bag_samples(tmp_path / 'bag', 'depth/image_raw', RGB_TOPIC,
                                      INFO_TOPIC, tolerance=0.001)
    assert (stats.pairs, stats.unmatched_depth, stats.unmatched_rgb) == (4, 0, 0)
    assert [s.stamp for s in samples] == pytest.approx([100.0, 100.05, 100.1, 100.15], abs=1e-9)
    for frame, sample in zip(written, samples):
        assert sample.unit == ('metre' if float_depth else 'millimetre')
        expected_valid = np.isfinite(frame.depth) & (np.nan_to_num(frame.depth) > 0)
        assert np.array_equal(sample.valid, expected_valid)
        assert np.array_equal(sample.depth[sample.valid], frame.depth[expected_valid])
        assert np.array_equal(sample.rgb, frame.rgb)  # pairing kept frame i with RGB i
        assert np.allclose(sample.intrinsics, K)


def test_float64_depth_is_written_as_32fc1_metres(tmp_path):
    """write_bag converts float64 (what numpy arithmetic gives) to 32FC1 before encoding."""
    metres = np.full((6, 8), 1.25, np.float64)
    metres[2, 3] = np.nan
    write_bag(tmp_path / 'bag', [BagFrame(depth=metres)])
    (sample,), _ = read_bag_samples(tmp_path / 'bag', DEPTH_TOPIC)
    assert sample.unit == 'metre' and sample.depth.dtype == np.float32
    assert np.array_equal(sample.valid, np.isfinite(metres))
    assert np.array_equal(sample.depth[sample.valid], np.full(47, 1.25, np.float32))


def test_compressed_rgb_decodes(tmp_path):
    written = frames(2)
    rows, cols = np.mgrid[0:24, 0:32]
    for index, frame in enumerate(written):  # smooth colours survive JPEG nearly unchanged
        frame.rgb = np.stack([rows * 8, cols * 6, np.full_like(rows, 40 * index)], axis=2)
        frame.rgb = frame.rgb.astype(np.uint8)
    write_bag(tmp_path / 'bag', written, storage='mcap', compressed_rgb=True)
    samples, stats = read_bag_samples(tmp_path / 'bag', DEPTH_TOPIC,
                                      RGB_TOPIC + '/compressed')
    assert stats.pairs == 2
    # JPEG is lossy: the decoded image is close to, not equal to, the written one.
    error = np.abs(samples[1].rgb.astype(int) - written[1].rgb.astype(int)).mean()
    assert samples[1].rgb.shape == (24, 32, 3) and error < 3
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0] = 200  # pure red survives JPEG: checks the BGR -> RGB order
    ok, jpeg = cv2.imencode('.jpg', smooth[:, :, ::-1])
    msg = SimpleNamespace(format='rgb8; jpeg compressed bgr8', data=jpeg.reshape(-1))
    decoded, encoding = decode_compressed(msg)
    assert encoding == 'rgb8' and abs(int(decoded[8, 8, 0]) - 200) <= 2 and decoded[8, 8, 2] < 5


def test_missing_topic_lists_existing_topics(tmp_path):
    write_bag(tmp_path / 'bag', frames(1))
    with pytest.raises(BagError) as info:
        read_bag_samples(tmp_path / 'bag', '/camera/depth/image_rect_raw')
    message = str(info.value)
    assert '/camera/depth/image_rect_raw' in message
    for topic in (DEPTH_TOPIC, RGB_TOPIC, INFO_TOPIC):
        assert topic in message
    with pytest.raises(BagError, match='rosbag2|does not exist'):
        read_bag_samples(tmp_path / 'nobag', DEPTH_TOPIC)


def test_unmatched_frames_are_counted_and_logged(tmp_path, caplog):
    written = frames(4)
    for frame, stamp, offset in zip(written, [10.0, 10.1, 10.2, 10.3], [0.0, 0.004, 0.05, 0.001]):
        frame.stamp, frame.rgb_stamp = stamp, stamp + offset  # frame 2's RGB is 50 ms late
    write_bag(tmp_path / 'mixed', written)
    stats = BagStats()
    with caplog.at_level(logging.INFO, logger='training.data.rosbag_io'):
        samples = list(iter_bag_samples(tmp_path / 'mixed', DEPTH_TOPIC, RGB_TOPIC,
                                        tolerance=0.01, stats=stats))
    assert [round(s.stamp, 3) for s in samples] == [10.0, 10.1, 10.3]
    assert (stats.pairs, stats.unmatched_depth, stats.unmatched_rgb) == (3, 1, 1)
    assert stats.max_pair_offset == pytest.approx(0.004, abs=1e-6)
    assert '1 depth without RGB partner' in caplog.text


def test_rgb_is_resized_to_depth(tmp_path, caplog):
    write_bag(tmp_path / 'bag', frames(2, rgb_shape=(48, 64)))
    with caplog.at_level(logging.WARNING, logger='training.data.rosbag_io'):
        samples, stats = read_bag_samples(tmp_path / 'bag', DEPTH_TOPIC, RGB_TOPIC)
    assert samples[0].rgb.shape == (24, 32, 3) and stats.rgb_resized == 2
    assert 'resized to the depth size' in caplog.text


def _image(array: np.ndarray, encoding: str, bigendian: bool = False, pad: int = 0):
    typed = array.astype(array.dtype.newbyteorder('>' if bigendian else '<'))
    rows = typed.view(np.uint8).reshape(array.shape[0], -1)
    rows = np.hstack([rows, np.full((rows.shape[0], pad), 0xEE, np.uint8)])
    return SimpleNamespace(encoding=encoding, height=array.shape[0], width=array.shape[1],
                           step=rows.shape[1], is_bigendian=int(bigendian),
                           data=np.ascontiguousarray(rows).reshape(-1))


@pytest.mark.parametrize('encoding, dtype', [('16UC1', np.uint16), ('mono16', np.uint16),
                                             ('32FC1', np.float32)])
@pytest.mark.parametrize('bigendian', [False, True])
def test_depth_encodings_honour_step_and_endianness(encoding, dtype, bigendian):
    array = (np.arange(12).reshape(3, 4) * 300 + 1).astype(dtype)
    decoded, got = decode_image(_image(array, encoding, bigendian, pad=6))
    assert got == encoding and decoded.dtype.byteorder in ('=', '|', '<')
    assert np.array_equal(decoded, array)


def test_colour_encodings():
    rgb = colour(3, 5)
    for encoding, source in [('rgb8', rgb), ('bgr8', rgb[..., ::-1]),
                             ('mono8', rgb[..., 0])]:
        image = source.reshape(3, 5, -1)
        msg = _image(image.reshape(3, -1), encoding, pad=3)
        msg.width = 5
        decoded, got = decode_image(msg)
        assert got == encoding
        out = to_rgb(decoded, got)
        expected = np.repeat(rgb[..., :1], 3, axis=2) if encoding == 'mono8' else rgb
        assert np.array_equal(out, expected)
    with pytest.raises(BagError, match='unsupported image encoding'):
        decode_image(_image(rgb[..., 0], 'yuv422'))


def test_make_bag_and_bag_info_cli(tmp_path, capsys):
    folder = make_folder(tmp_path / 'rec', count=3, intrinsics={'K': K.reshape(-1).tolist()})
    assert make_bag.main(['--input', str(folder), '--out', str(tmp_path / 'bag'),
                          '--storage', 'mcap', '--rate', '15', '--compressed-rgb']) == 0
    assert bag_info.main([str(tmp_path / 'bag'), '--depth-topic', DEPTH_TOPIC,
                          '--rgb-topic', RGB_TOPIC + '/compressed']) == 0
    out = capsys.readouterr().out
    assert 'sensor_msgs/msg/CompressedImage' in out and '3 usable frames' in out
    samples = load_samples({'type': 'rosbag', 'root': str(tmp_path / 'bag'),
                            'camera_info_topic': INFO_TOPIC})
    originals = load_samples({'type': 'folder', 'root': str(folder)})
    assert len(samples) == 3 and samples[0].unit == 'millimetre'
    assert np.array_equal(samples[2].depth, originals[2].depth)
    assert samples[1].stamp - samples[0].stamp == pytest.approx(1 / 15, abs=1e-6)
    assert np.allclose(samples[0].intrinsics, K)
    thinned = load_samples({'type': 'rosbag', 'root': str(tmp_path / 'bag'), 'every': 2})
    assert [s.name[-6:] for s in thinned] == ['000000', '000002']
    first = load_samples({'type': 'rosbag', 'root': str(tmp_path / 'bag'), 'max_frames': 1})
    assert len(first) == 1
    assert bag_info.main([str(tmp_path / 'bag'), '--depth-topic', '/nope']) == 2
    assert '/depth/camera_info' in capsys.readouterr().err


def test_shared_open3d_bag(tmp_path):
    root = require_shared('open3d_rgbd_testdata')
    assert make_bag.main(['--input', str(root), '--out', str(tmp_path / 'bag'),
                          '--max-frames', '2']) == 0
    samples, stats = read_bag_samples(tmp_path / 'bag', DEPTH_TOPIC, RGB_TOPIC, INFO_TOPIC)
    original = load_samples({'type': 'folder', 'root': str(root), 'max_samples': 2})
    assert stats.pairs == 2
    assert np.array_equal(samples[1].depth, original[1].depth)
    assert np.array_equal(samples[1].rgb, original[1].rgb)
    assert samples[0].intrinsics[0, 0] == pytest.approx(525.0)


@pytest.mark.parametrize('storage, suffix', [('sqlite3', '.db3'), ('mcap', '.mcap')])
def test_corrupt_bag_error_names_the_bag(tmp_path, storage, suffix):
    bag = tmp_path / 'bag'
    write_bag(bag, frames(3), storage=storage)
    storage_file = next(bag.glob('*' + suffix))
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[:100] + b'\x00garbage' * 1000 + data[8100:])
    with pytest.raises(BagError) as info:
        read_bag_samples(bag, DEPTH_TOPIC)
    assert info.value.path == str(bag)
    assert any(reason in str(info.value) for reason in (
        'malformed', 'could be read', 'checksum mismatch')), info.value


def _rewrite_messages(db3, edit) -> None:
    """Apply ``edit(index, topic, raw) -> raw`` to every message of a sqlite3 bag, in order."""
    import sqlite3
    with sqlite3.connect(db3) as db:
        topics = dict(db.execute('SELECT id, name FROM topics'))
        rows = db.execute('SELECT id, topic_id, data FROM messages ORDER BY timestamp').fetchall()
        seen = {}
        for row_id, topic_id, raw in rows:
            topic = topics[topic_id]
            index = seen[topic] = seen.get(topic, -1) + 1
            new = edit(index, topic, bytes(raw))
            if new is not None:
                db.execute('UPDATE messages SET data = ? WHERE id = ?', (new, row_id))


def _with_encoding(raw: bytes, encoding: str) -> bytes:
    store = typestore()
    msg = store.deserialize_cdr(raw, IMAGE)
    msg.encoding = encoding
    return bytes(store.serialize_cdr(msg, IMAGE))


def test_undecodable_frames_are_skipped_and_counted_per_topic(tmp_path, caplog, capsys):
    bag = tmp_path / 'bag'
    write_bag(bag, frames(5), storage='sqlite3')
    garbage = b'\x00\x01\x00\x00' + b'\xde\xad' * 3

    def corrupt(index, topic, raw):
        if topic == DEPTH_TOPIC and index == 1:
            return garbage
        if topic == DEPTH_TOPIC and index == 2:
            return _with_encoding(raw, 'bgr8')
        if topic == RGB_TOPIC and index == 3:
            return garbage
        return None

    _rewrite_messages(next(bag.glob('*.db3')), corrupt)
    with caplog.at_level(logging.WARNING):
        samples, stats = read_bag_samples(bag, DEPTH_TOPIC, RGB_TOPIC, tolerance=0.001)
    assert len(samples) == 2 and stats.usable == 2 and stats.pairs == 5
    assert stats.undecodable == {DEPTH_TOPIC: 2, RGB_TOPIC: 1}
    assert 'cannot be deserialised' in stats.first_error[DEPTH_TOPIC]
    assert f'2 undecodable on {DEPTH_TOPIC} skipped' in stats.summary()
    assert caplog.text.count('skipping undecodable frames') == 2  # once per topic
    good = frames(5)  # frames 0 and 4 are intact and come out unchanged
    assert np.array_equal(samples[0].depth, good[0].depth)
    assert np.array_equal(samples[1].depth, good[4].depth)

    assert bag_info.main([str(bag), '--depth-topic', DEPTH_TOPIC, '--rgb-topic',
                          RGB_TOPIC, '--tolerance', '0.001']) == 0
    out = capsys.readouterr().out
    assert '2 usable frames' in out and f'undecodable on {DEPTH_TOPIC}: 2, first:' in out
    assert f'undecodable on {RGB_TOPIC}: 1' in out


def test_a_bag_where_nothing_decodes_is_an_error(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, frames(2), storage='sqlite3')
    _rewrite_messages(next(bag.glob('*.db3')),
                      lambda index, topic, raw: b'\x00' if topic == DEPTH_TOPIC else None)
    with pytest.raises(BagError, match=f'none of its 2 frames could be decoded; first failure '
                                       f'on {DEPTH_TOPIC}'):
        read_bag_samples(bag, DEPTH_TOPIC)


def test_mcap_chunks_carry_crcs_that_catch_a_flipped_byte(tmp_path):
    """rosbags writes CRC 0 ("not set"): a flipped byte read back as a wrong depth value."""
    bag = tmp_path / 'bag'
    written = frames(2)
    write_bag(bag, written, storage='mcap')
    mcap = next(bag.glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    pixels = written[1].depth.tobytes()
    at = data.find(pixels[:64])
    assert at > 0, 'uncompressed chunk expected'
    data[at + 100] ^= 0x01
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match='checksum mismatch'):
        read_bag_samples(bag, DEPTH_TOPIC)
