"""The paper's equations, one by one, against hand computations (Sun et al., CVPR 2021).

Eq. 1-2 held-out errors and the role rule, SSIM / L_DE, L_O (and its gating option), the
row-softmax affinity and L_A, SPNet's uncertainty-induced fusion (eq. 7-9), S_gt, and the
student/teacher freeze: gradients reach the student through SPNet and through the
distillation terms, the teacher gets none.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from training import losses
from training.config import load_config
from training.model import CrossTaskModel
from training.networks import SPNet, structure_map

CONFIGS = Path(__file__).resolve().parents[1] / 'training' / 'configs'


def tiny_model(**loss) -> CrossTaskModel:
    config = load_config(CONFIGS / 'smoke.yaml')
    config['loss'].update(loss)
    config['channels_last'] = False
    torch.manual_seed(0)
    return CrossTaskModel(config, torch.device('cpu'), cross_task=True)


def batch(size: int = 4, rgb_rows: int = 4, hr: int = 32, scale: int = 4) -> dict:
    generator = torch.Generator().manual_seed(1)
    hr_depth = torch.rand(size, 1, hr, hr, generator=generator)
    return {'lr': torch.nn.functional.avg_pool2d(hr_depth, scale),
            'hr': hr_depth, 'valid': torch.ones(size, 1, hr, hr),
            'rgb': torch.rand(size, 3, hr, hr, generator=generator),
            'has_rgb': torch.arange(size) < rgb_rows}


def test_eq1_2_held_out_errors_are_mean_abs_errors_over_valid_pixels():
    model = tiny_model()
    data = batch()
    data['valid'][:, :, :8] = 0
    sums = model.held_out_sums(data)
    with torch.no_grad():
        d_sr = model.dsrnet(data['lr'])
        d_de, _ = model.denet(data['rgb'])
    valid = data['valid'].bool()
    assert sums['count'] == valid.sum().item()
    assert sums['e_dsr'] == pytest.approx((d_sr - data['hr']).abs()[valid].sum().item(),
                                          rel=1e-5)
    assert sums['e_de'] == pytest.approx((d_de - data['hr']).abs()[valid].sum().item(),
                                         rel=1e-5)


def test_role_rule_the_better_net_teaches_and_alternate_switches():
    model = tiny_model()
    stage2 = int(model.config['schedule']['stage1_epochs'])
    assert model.choose_role(stage2, {'e_dsr': 0.1, 'e_de': 0.2}) == 'de'
    assert model.choose_role(stage2, {'e_dsr': 0.2, 'e_de': 0.2}) == 'de'  # e_dsr <= e_de
    assert model.choose_role(stage2, {'e_dsr': 0.3, 'e_de': 0.2}) == 'dsr'
    model.config['schedule']['role_policy'] = 'alternate'
    assert [model.choose_role(stage2 + k, {}) for k in range(3)] == ['dsr', 'de', 'dsr']


def test_ssim_and_de_loss_match_the_closed_form_on_constant_images():
    a, b, lam = 0.3, 0.5, 0.2
    x = torch.full((1, 1, 8, 8), a, dtype=torch.float64)
    y = torch.full((1, 1, 8, 8), b, dtype=torch.float64)
    c1 = 0.01 ** 2
    expected_ssim = (2 * a * b + c1) / (a * a + b * b + c1)  # sigma terms cancel: c2 / c2
    assert losses.ssim(x, y).mean().item() == pytest.approx(expected_ssim, rel=1e-5)
    assert losses.ssim(x, x).mean().item() == pytest.approx(1.0, abs=1e-6)
    expected = lam * (1 - expected_ssim) / 2 + (1 - lam) * abs(a - b)
    assert losses.de_loss(x, y, ssim_lambda=lam).item() == pytest.approx(expected, rel=1e-5)


def test_output_loss_is_the_mean_over_side_outputs_of_the_l1_and_gates_only_shrink_it():
    student = [torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)]
    teacher = [torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), 3.0)]
    assert losses.output_loss(student, teacher).item() == pytest.approx((0.5 + 2.0) / 2)
    target = torch.tensor([[[[0.5, 0.0], [0.5, 0.0]]]])
    gate = losses.teacher_better_mask(student[0], teacher[0], target)
    assert gate.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]
    gated = losses.output_loss(student[:1], teacher[:1], [gate]).item()
    assert gated == pytest.approx(0.5 * 2 / 4)


def test_affinity_rows_sum_to_one_and_l_a_is_the_mean_abs_difference():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 4, 5)
    matrix = losses.affinity(features, size=32)
    assert matrix.shape == (2, 20, 20)
    assert torch.allclose(matrix.sum(-1), torch.ones(2, 20), atol=1e-6)
    flat = features.flatten(2).transpose(1, 2)
    assert torch.allclose(matrix, torch.softmax(flat @ flat.transpose(1, 2), -1), atol=1e-6)
    other = torch.randn(2, 3, 4, 5)
    expected = (matrix - losses.affinity(other, 32)).abs().mean()
    value = losses.affinity_loss([features, other], [other, other], 32)
    assert value.item() == pytest.approx(expected.item() / 2, rel=1e-6)
    pooled = losses.affinity(torch.randn(1, 3, 16, 16), size=4)
    assert pooled.shape == (1, 16, 16)


def test_paper_affinity_uses_raw_features_by_default():
    config = load_config(CONFIGS / 'paper_x4.yaml')
    assert config['loss']['affinity_normalize'] is False
    features = torch.randn(1, 3, 4, 4) * 3
    raw = losses.affinity(features, 32)
    cosine = losses.affinity(features, 32, normalize=True)
    assert not torch.allclose(raw, cosine)


def test_spnet_fuses_features_by_one_plus_uncertainty_eq_7_to_9():
    torch.manual_seed(0)
    spnet = SPNet(3, 2, num_channels=4, num_layers=1)
    f_sr, f_de = torch.randn(1, 3, 6, 6), torch.randn(1, 2, 6, 6)
    d_sr, d_de, d_hr = torch.rand(1, 1, 6, 6), torch.rand(1, 1, 6, 6), torch.rand(1, 1, 6, 6)
    seen = {}
    spnet.body[0].register_forward_hook(lambda m, i, o: seen.update(fused=i[0]))
    out = spnet(f_sr, d_sr, f_de, d_de, d_hr)
    u_sr = torch.sigmoid(spnet.lift_sr(d_sr - d_hr))
    u_de = torch.sigmoid(spnet.lift_de(d_de - d_hr))
    expected = torch.cat([f_sr * (1 + u_sr), f_de * (1 + u_de)], dim=1)
    assert torch.allclose(seen['fused'], expected, atol=1e-6)
    assert out.shape == (1, 1, 6, 6)


def test_structure_ground_truth_is_spsr_central_difference_magnitude():
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8) * 0.25
    spsr = structure_map(ramp)
    # interior: gx = D(x+1) - D(x-1) = 2 * 0.25, gy = 0
    assert spsr[0, 0, 4, 4].item() == pytest.approx(math.sqrt(0.5 ** 2 + 1e-6), rel=1e-6)
    assert structure_map(ramp, 'half')[0, 0, 4, 4].item() == pytest.approx(0.25, rel=1e-5)
    assert load_config(CONFIGS / 'paper_x4.yaml')['loss']['structure_kernel'] == 'spsr'


def _student_grads(student: str, monkeypatch, **loss) -> dict:
    model = tiny_model(**loss)
    model.set_frozen(student)
    for optimizer in model.optimizers.values():
        monkeypatch.setattr(optimizer, 'step', lambda *a, **k: None)
    model.step('stage2', batch(), student)
    net = model.dsrnet if student == 'dsr' else model.denet
    teacher = model.denet if student == 'dsr' else model.dsrnet
    assert all(p.grad is None for p in teacher.parameters())
    return {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('student', ['dsr', 'de'])
def test_gradients_reach_the_student_through_spnet(student, monkeypatch):
    base = dict(use_output=False, use_affinity=False, side_weight=0.0)
    with_sp = _student_grads(student, monkeypatch, use_spnet=True, rho1=1.0, **base)
    without = _student_grads(student, monkeypatch, use_spnet=False, **base)
    moved = sum((with_sp[k] - without[k]).abs().sum().item() for k in without)
    assert moved > 0, 'L_struc sends no gradient into the student'
    # and it is the structure term that does it: rho1 = 0 leaves the task gradient alone
    silent = _student_grads(student, monkeypatch, use_spnet=True, rho1=0.0, **base)
    assert all(torch.allclose(silent[k], without[k]) for k in without)


@pytest.mark.parametrize('term', ['use_output', 'use_affinity'])
def test_gradients_reach_the_student_through_each_distillation_term(term, monkeypatch):
    off = dict(use_output=False, use_affinity=False, use_spnet=False)
    plain = _student_grads('dsr', monkeypatch, **off)
    taught = _student_grads('dsr', monkeypatch, **dict(off, **{term: True}, rho2=10.0))
    assert sum((taught[k] - plain[k]).abs().sum().item() for k in plain) > 0


def test_mixed_batch_adds_teaching_terms_for_rgbd_rows_only(monkeypatch):
    model = tiny_model()
    model.set_frozen('dsr')
    for optimizer in model.optimizers.values():
        monkeypatch.setattr(optimizer, 'step', lambda *a, **k: None)
    half = model.step('stage2', batch(rgb_rows=2), 'dsr')
    assert half['rgbd_fraction'] == 0.5
    assert {'l_o', 'l_a', 'l_struc', 'share_o', 'share_a', 'share_struc'} <= set(half)
    cfg = model.config['loss']
    assert half['share_struc'] == pytest.approx(0.5 * cfg['rho1'] * half['l_struc']
                                                / half['l_dsr'], rel=1e-5)
    none = model.step('stage2', batch(rgb_rows=0), 'dsr')
    assert none['rgbd_fraction'] == 0.0 and 'l_o' not in none and 'l_dsr' in none


def test_error_ratio_gating_weights_l_o_by_relative_teacher_quality():
    model = tiny_model(output_gating='error_ratio')
    model.begin_epoch('dsr', {'e_dsr': 0.01, 'e_de': 0.4})
    assert model.output_weight == pytest.approx(0.025)
    model.begin_epoch('de', {'e_dsr': 0.01, 'e_de': 0.4})
    assert model.output_weight == 1.0
    plain = tiny_model()
    plain.begin_epoch('dsr', {'e_dsr': 0.01, 'e_de': 0.4})
    assert plain.output_weight == 1.0


def test_spnet_schedule_starts_with_stage_2():
    model = tiny_model()
    model.config['optim'].update(lr_step_epochs=1)
    for scheduler in model.schedulers.values():
        scheduler.step_size = 1
    model.end_epoch(stage=1)
    rates = model.learning_rates()
    assert rates['lr'] == pytest.approx(1e-4) and rates['lr_sp'] == pytest.approx(1e-3)
    model.end_epoch(stage=2)
    assert model.learning_rates()['lr_sp'] == pytest.approx(1e-4)


# ---------------------------------------------------------------- issue 28: the changed terms
def test_affinity_temperature_and_centring_follow_their_equation():
    torch.manual_seed(0)
    features = torch.rand(2, 4, 3, 5) + 1.0  # all positive: post-PReLU-like features
    flat = features.flatten(2).transpose(1, 2)
    unit = torch.nn.functional.normalize(flat, dim=-1)
    expected = torch.softmax(unit @ unit.transpose(1, 2) / 0.1, -1)
    assert torch.allclose(losses.affinity(features, 32, True, 0.1), expected, atol=1e-6)
    centred = torch.nn.functional.normalize(flat - flat.mean(1, keepdim=True), dim=-1)
    expected = torch.softmax(centred @ centred.transpose(1, 2) / 0.1, -1)
    assert torch.allclose(losses.affinity(features, 32, True, 0.1, center=True), expected,
                          atol=1e-6)
    other = torch.rand(2, 4, 3, 5)
    value = losses.affinity_loss([features], [other], 32, True, 0.1, True)
    reference = (losses.affinity(features, 32, True, 0.1, True)
                 - losses.affinity(other, 32, True, 0.1, True)).abs().mean()
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    with pytest.raises(ValueError, match='temperature must be > 0'):
        losses.affinity(features, 32, True, 0.0)


def test_affinity_rows_are_neither_one_hot_nor_uniform_with_the_fair_recipe():
    """Raw products of large features: one-hot rows; cosine of same-signed features: uniform
    rows; centred cosine at T = 0.1 (the fair ablation's recipe) in between. The features
    are spatially smooth fields on a common offset, as a net's are."""
    torch.manual_seed(0)
    fields = torch.nn.functional.interpolate(torch.rand(1, 32, 4, 4), size=(16, 16),
                                             mode='bilinear', align_corners=False)
    features = 1.0 + 0.2 * fields + 0.01 * torch.randn(1, 32, 16, 16)
    positions = 16 * 16
    raw = losses.affinity_row_peak([features * 16], 16)
    cosine = losses.affinity_row_peak([features], 16, True, 0.1)
    fair = losses.affinity_row_peak([features], 16, True, 0.1, center=True)
    assert raw > 0.99
    assert cosine < 1.5 / positions
    assert 3.0 / positions < fair < 0.5


def test_final_output_distillation_compares_d_sr_with_d_de_on_rgbd_rows(monkeypatch):
    model = tiny_model(distill_target='final', use_affinity=False, use_spnet=False,
                       side_weight=0.0)
    model.set_frozen('dsr')
    for optimizer in model.optimizers.values():
        monkeypatch.setattr(optimizer, 'step', lambda *a, **k: None)
    data = batch(rgb_rows=2)
    with torch.no_grad():
        d_sr = model.dsrnet(data['lr'])[:2]
        d_de, _ = model.denet(data['rgb'][:2])
    report = model.step('stage2', data, 'dsr')
    assert report['l_o'] == pytest.approx((d_sr - d_de).abs().mean().item(), rel=1e-5)
    sides = tiny_model(use_affinity=False, use_spnet=False, side_weight=0.0)
    sides.set_frozen('dsr')
    with torch.no_grad():
        feats_sr = sides.dsrnet(data['lr'], return_features=True)[1]
        feats_de = sides.denet(data['rgb'][:2])[1]
        expected = torch.stack([(s[:2] - t).abs().mean() for s, t in
                                zip(sides.sides_sr(feats_sr), sides.sides_de(feats_de))]).mean()
    assert sides.step('stage2', data, 'dsr')['l_o'] == pytest.approx(expected.item(), rel=1e-5)


def test_deep_supervision_is_the_mean_l1_of_every_side_output_against_d_hr(monkeypatch):
    model = tiny_model(side_weight=0.5)
    for optimizer in model.optimizers.values():
        monkeypatch.setattr(optimizer, 'step', lambda *a, **k: None)
    data = batch()
    data['valid'][:, :, :4] = 0
    with torch.no_grad():
        _, feats = model.denet(data['rgb'])
        sides = model.sides_de(feats)
    expected = torch.stack([losses.masked_l1(s, data['hr'], data['valid'])
                            for s in sides]).mean()
    report = model.step('de', data, 'both')
    assert report['l_side_de'] == pytest.approx(expected.item(), rel=1e-5)
    assert report['share_side_de'] == pytest.approx(0.5 * expected.item() / report['l_de'],
                                                    rel=1e-5)


def test_each_term_fraction_is_its_part_of_the_students_whole_loss(monkeypatch):
    model = tiny_model(side_weight=0.1)
    model.set_frozen('dsr')
    for optimizer in model.optimizers.values():
        monkeypatch.setattr(optimizer, 'step', lambda *a, **k: None)
    report = model.step('stage2', batch(rgb_rows=2), 'dsr')
    fractions = {k: v for k, v in report.items() if k.startswith('frac_')}
    assert set(fractions) == {'frac_task', 'frac_side_dsr', 'frac_o', 'frac_a', 'frac_struc'}
    assert sum(fractions.values()) == pytest.approx(1.0, rel=1e-6)
    total = report['l_dsr'] * (1 + sum(v for k, v in report.items() if k.startswith('share_')))
    assert fractions['frac_o'] == pytest.approx(report['share_o'] * report['l_dsr'] / total,
                                                rel=1e-6)
    assert 0.0 < report['a_row_peak'] <= 1.0


def test_held_out_base_error_is_the_bicubic_upsampling_error():
    model = tiny_model()
    data = batch()
    data['valid'][:, :, -5:] = 0
    base = torch.nn.functional.interpolate(data['lr'], scale_factor=4, mode='bicubic',
                                           align_corners=False)
    expected = ((base - data['hr']).abs() * data['valid']).sum().item()
    assert model.held_out_sums(data)['e_base'] == pytest.approx(expected, rel=1e-5)


def test_residual_side_outputs_add_the_nets_base(monkeypatch):
    model = tiny_model(side_weight=0.1)
    model.config['side_outputs']['residual'] = True
    model.sides_sr.residual = True
    data = batch()
    with torch.no_grad():
        _, feats, sides = model._forward('dsr', data)
        base = torch.nn.functional.interpolate(data['lr'], scale_factor=4, mode='bicubic',
                                               align_corners=False)
        heads = [head(f) for head, f in zip(model.sides_sr.heads, feats)]
    assert all(torch.allclose(s, h + base, atol=1e-6) for s, h in zip(sides, heads))
    with torch.no_grad():  # DENet has no base: its side outputs stay absolute
        model.sides_de.residual = True
        _, feats, sides = model._forward('de', data)
        assert all(torch.equal(s, head(f)) for s, head, f in
                   zip(sides, model.sides_de.heads, feats))
