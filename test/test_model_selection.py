"""Shipped-model registry and the start-up choice of the largest model that keeps up."""

from pathlib import Path

import pytest

from dsr_ros import model_selection
from dsr_ros.model_selection import choose_model
from dsr_ros.weights import MODEL_SIZES, shipped_models, shipped_weights


def test_registry_lists_sensor_models_by_scale_in_ladder_order():
    for scale, sizes in shipped_models().items():
        assert list(sizes) == [s for s in MODEL_SIZES if s in sizes]
        for size, path in sizes.items():
            assert path.name == f'dsrnet_sensor_{size}_x{scale}.pt' and path.is_file()
            assert shipped_weights(size, scale) == path


def test_unknown_or_missing_models_are_refused_clearly():
    with pytest.raises(ValueError, match='model must be one of'):
        shipped_weights('huge', 4)
    with pytest.raises(ValueError, match='no shipped tiny model for x16'):
        shipped_weights('tiny', 16)


class _FakeResolver:
    def __init__(self, name):
        self.name = name


def test_auto_picks_the_largest_that_keeps_up(monkeypatch):
    timings = {'tiny': 0.02, 'lite': 0.5, 'paper': 3.0}
    monkeypatch.setattr(model_selection, 'time_resolver', lambda r, shape: timings[r.name])
    candidates = {name: Path(f'{name}.pt') for name in MODEL_SIZES}
    built = []

    def build(path):
        built.append(path.stem)
        return _FakeResolver(path.stem)

    choice, resolver = choose_model(candidates, build, (120, 160), rate_hz=1.0)
    assert (choice.size, choice.keeps_up, resolver.name) == ('lite', True, 'lite')
    assert list(choice.seconds) == ['tiny', 'lite', 'paper']
    built.clear()
    choice, resolver = choose_model(candidates, build, (120, 160), rate_hz=10.0)
    assert (choice.size, choice.keeps_up, resolver.name) == ('tiny', True, 'tiny')
    assert built == ['tiny', 'lite']  # stops at the first that falls behind: paper never runs
    choice, _ = choose_model(candidates, build, (120, 160), rate_hz=100.0)
    assert (choice.size, choice.keeps_up, list(choice.seconds)) == ('tiny', False, ['tiny'])
    assert 'too slow for 100 Hz' in choice.describe(100.0)
    choice, _ = choose_model(candidates, build, (120, 160), rate_hz=0.0)  # rate unknown
    assert (choice.size, choice.keeps_up) == ('paper', True)


def test_time_resolver_runs_a_real_model(tiny_checkpoint):
    from dsr_ros.inference import DepthSuperResolver
    resolver = DepthSuperResolver.from_checkpoint(tiny_checkpoint, device='cpu')
    seconds = model_selection.time_resolver(resolver, (24, 32), repeats=2)
    assert 0 < seconds < 10
