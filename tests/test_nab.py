"""NAB scoring: hand-computed cases, and the sweep against brute force and a port of NAB's Sweeper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.kpi.nab import (
    PROFILES,
    nab_score,
    probation_length,
    scaled_sigmoid,
    score_series,
    sweep,
    windows_from_anomalies,
    windows_from_segments,
)

# One series of 1000 points, one anomaly at 500: NAB's window is 10% of 1000 = 100 points split
# 50/50 around it, so [450, 550] (101 points); the probationary period is the first 150 points.
N = 1000
WIN = [(450, 550)]


def _score(*at: int, profile: str = "standard") -> float:
    det = np.zeros(N, dtype=bool)
    det[list(at)] = True
    return score_series(det, WIN, profile).score


def test_probation_is_15_percent_capped_at_750_points() -> None:
    assert probation_length(1000) == 150
    assert probation_length(4999) == 749
    assert probation_length(5000) == 750
    assert probation_length(20000) == 750
    assert probation_length(20) == 3


def test_scaled_sigmoid_matches_the_documented_values() -> None:
    got = scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.5]))
    np.testing.assert_allclose(got, [0.98661, 0.84828, 0.0, -0.98661, -1.0], atol=1e-5)


def test_windows_are_centred_10_percent_split_among_anomalies_clipped_merged_and_out_of_probation() -> None:
    assert windows_from_anomalies([500], N) == [(450, 550)]
    assert windows_from_anomalies([700, 300], N) == [(275, 325), (675, 725)]  # 50 points each
    assert windows_from_anomalies([995], N) == [(945, 999)]  # clipped at the end
    assert windows_from_anomalies([100, 500], N) == [(475, 525)]  # [75, 125] starts in probation
    assert windows_from_anomalies([500, 540], N) == [(475, 565)]  # [475, 525] and [515, 565] overlap
    assert windows_from_anomalies([], N) == []


def test_segment_windows_centre_on_the_onset_and_cover_a_long_segment() -> None:
    short = np.zeros(N, dtype=np.int8)
    short[500:520] = 1
    assert windows_from_segments(short) == [(450, 550)]
    long = np.zeros(N, dtype=np.int8)
    long[500:600] = 1
    assert windows_from_segments(long) == [(450, 599)]
    two = np.zeros(N, dtype=np.int8)
    two[300:310] = 1
    two[700:710] = 1
    assert windows_from_segments(two) == [(275, 325), (675, 725)]


def test_a_detection_at_the_window_start_earns_a_tp_and_at_its_end_almost_nothing() -> None:
    assert _score(450) == pytest.approx(1.0, abs=1e-12)
    # Last point: 2 sigmoid(5 / 101) - 1 over 2 sigmoid(5) - 1.
    assert _score(550) == pytest.approx(0.0250832, abs=1e-6)
    assert _score(500) == pytest.approx(0.8632734, abs=1e-6)  # the anomaly itself, mid-window


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    assert _score(460, 500, 549) == pytest.approx(0.9914041, abs=1e-6)
    assert _score(460, 500, 549) == pytest.approx(_score(460), abs=1e-12)
    assert score_series(np.isin(np.arange(N), [460, 500]), WIN).tp == 2  # NAB counts points


def test_false_positives_cost_less_right_after_a_window_than_far_from_it() -> None:
    miss = -1.0  # the window is missed in all of these
    assert _score(900) == pytest.approx(miss - 0.11, abs=1e-12)  # 3.5 window-lengths on: full A_FP
    assert _score(200) == pytest.approx(miss - 0.11, abs=1e-12)  # no preceding window: full A_FP
    assert _score(551) == pytest.approx(miss - 0.0027494, abs=1e-6)  # 0.11 * S(1/100)
    assert _score(650) == pytest.approx(miss - 0.1085272, abs=1e-6)  # 0.11 * S(1)
    assert _score(551, profile="reward_low_FP_rate") == pytest.approx(miss - 0.0054989, abs=1e-6)
    assert _score(900, profile="reward_low_FN_rate") == pytest.approx(-2.0 - 0.11, abs=1e-12)


def test_detections_in_the_probationary_period_are_ignored() -> None:
    assert _score(100) == pytest.approx(-1.0, abs=1e-12)
    assert _score(100, 149, 450) == pytest.approx(1.0, abs=1e-12)
    assert _score(150) == pytest.approx(-1.11, abs=1e-12)  # the first scored point
    out = score_series(np.ones(N, dtype=bool), WIN)
    assert (out.tp, out.fp, out.fn, out.tn) == (101, 749, 0, 0)


def test_a_window_wholly_in_probation_is_neither_missed_nor_scored() -> None:
    det = np.zeros(N, dtype=bool)
    out = score_series(det, [(10, 20), (450, 550)])
    assert (out.score, out.windows) == (-1.0, 1)


def _corpus(rng: np.random.Generator, n_series: int = 4) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    corpus = []
    for _ in range(n_series):
        n = int(rng.integers(200, 400))
        anomalies = rng.choice(np.arange(int(0.2 * n), n), size=int(rng.integers(0, 4)), replace=False)
        windows = windows_from_anomalies(anomalies, n)
        scores = np.round(rng.random(n), 2)  # ties: many points share a threshold
        for s, e in windows:  # a detector that is somewhat right
            scores[s + int(rng.integers(0, e - s + 1))] = 0.9 + 0.1 * rng.random()
        corpus.append((scores, windows))
    return corpus


@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_sweep_finds_the_threshold_a_brute_force_loop_finds(profile: str) -> None:
    corpus = _corpus(np.random.default_rng(7))
    sw = sweep(corpus, profile)
    candidates = np.concatenate(
        [[np.inf], np.unique(np.concatenate([s[probation_length(len(s)) :] for s, _ in corpus]))[::-1]]
    )
    brute = np.array([sum(score_series(s >= t, w, profile).score for s, w in corpus) for t in candidates])
    np.testing.assert_array_equal(sw.thresholds, candidates)
    np.testing.assert_allclose(sw.scores, brute, rtol=0, atol=1e-9)
    assert sw.thresholds[sw.best()] == candidates[int(np.argmax(brute))]
    assert brute.max() > brute[0]  # the best threshold beats never detecting: the test can tell them apart


def test_tied_thresholds_resolve_to_the_highest_as_in_nab() -> None:
    scores = np.zeros(N)
    scores[450] = 0.9
    scores[500] = 0.8  # a later detection in the same window: adds nothing, so 0.8 ties with 0.9
    sw = sweep([(scores, WIN)])
    np.testing.assert_array_equal(sw.thresholds, [np.inf, 0.9, 0.8, 0.0])
    assert sw.scores[1] == sw.scores[2] == 1.0
    assert sw.thresholds[sw.best()] == 0.9
    assert (sw.tp[2], sw.windows_detected[2]) == (2, 1)


def _sweeper_port(corpus, profile: str) -> list[tuple[float, float, int, int]]:
    """NAB's Sweeper.calcSweepScore + calcScoreByThreshold, transcribed loop for loop (threshold,
    score, tp, fp), with +inf for its starting threshold of 1.1."""
    p = PROFILES[profile]
    tp_w, fp_w, fn_w = p.a_tp, -p.a_fp, -p.a_fn

    def s(y: float) -> float:
        return -1.0 if y > 3.0 else 2 / (1 + math.exp(5 * y)) - 1

    rows = []
    for k, (scores, windows) in enumerate(corpus):
        probation = min(math.floor(0.15 * len(scores)), 0.15 * 5000)
        pending, cur, prev = list(windows), None, None
        for i, a in enumerate(scores):
            if pending and i == pending[0][0]:
                cur = pending.pop(0)
            if cur is not None:
                value = s(-(cur[1] - i + 1) / (cur[1] - cur[0] + 1)) * tp_w / s(-1.0)
            elif prev is None:
                value = -1.0 * fp_w
            else:
                value = s(abs(prev[1] - i) / (prev[1] - prev[0] + 1 - 1)) * fp_w
            if i >= probation:
                rows.append((float(a), value, None if cur is None else (k, cur[0])))
            if cur is not None and i == cur[1]:
                prev, cur = cur, None
    rows.sort(key=lambda r: r[0], reverse=True)
    parts: dict[object, float] = {"fp": 0.0}
    for _, _, name in rows:
        if name is not None:
            parts[name] = -fn_w
    out, threshold, tp, fp = [], math.inf, 0, 0
    for a, value, name in rows:
        if a != threshold:
            out.append((threshold, sum(parts.values()), tp, fp))
            threshold = a
        if name is None:
            fp += 1
            parts["fp"] += value
        else:
            tp += 1
            parts[name] = max(parts[name], value)
    out.append((threshold, sum(parts.values()), tp, fp))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sweep_matches_a_port_of_nabs_sweeper(seed: int) -> None:
    corpus = _corpus(np.random.default_rng(seed), n_series=6)
    for profile in PROFILES:
        ref = _sweeper_port(corpus, profile)
        sw = sweep(corpus, profile)
        np.testing.assert_array_equal(sw.thresholds, [r[0] for r in ref])
        np.testing.assert_allclose(sw.scores, [r[1] for r in ref], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(sw.tp, [r[2] for r in ref])
        np.testing.assert_array_equal(sw.fp, [r[3] for r in ref])
        best = max(range(len(ref)), key=lambda j: ref[j][1])  # NAB: first of the stable sort
        assert sw.best() == best


def test_the_perfect_detector_scores_100_and_the_null_detector_0() -> None:
    corpus = _corpus(np.random.default_rng(11), n_series=5)
    n_windows = sum(len(w) for _, w in corpus)
    assert n_windows >= 3
    perfect = []
    for s, w in corpus:
        p = np.zeros(len(s))
        p[[start for start, _ in w]] = 1.0
        perfect.append((p, w))
    got = nab_score(perfect)
    assert got.score == pytest.approx(100.0, abs=1e-9)
    assert (got.threshold, got.windows_detected, got.fp) == (1.0, n_windows, 0)
    assert (got.perfect, got.null) == pytest.approx((n_windows, -n_windows))
    null = nab_score([(np.zeros(len(s)), w) for s, w in corpus])
    assert null.score == pytest.approx(0.0, abs=1e-9)
    assert (null.threshold, null.windows_detected) == (np.inf, 0)
    assert null.per_series == pytest.approx([-len(w) for _, w in corpus])
    low_fn = nab_score(perfect, profile="reward_low_FN_rate")
    assert (low_fn.score, low_fn.null) == pytest.approx((100.0, -2.0 * n_windows))


def test_nab_score_takes_anomaly_indices_segments_and_a_fixed_threshold() -> None:
    scores = np.zeros(N)
    scores[[460, 800]] = 1.0  # a detection at 460, and an FP 2.5 window-lengths after the window
    tp = float(scaled_sigmoid(-91 / 101) / scaled_sigmoid(-1.0))
    expected = tp + 0.11 * float(scaled_sigmoid(2.5))
    by_index = nab_score([(scores, np.array([500]))])
    assert by_index.raw == pytest.approx(expected, abs=1e-12)
    assert by_index.raw == pytest.approx(0.8814049, abs=1e-6)
    assert by_index.score == pytest.approx(100 * (0.8814049 + 1) / 2, abs=1e-4)
    segment = np.zeros(N, dtype=bool)
    segment[500:520] = True
    assert nab_score([(scores, segment)]).raw == pytest.approx(expected, abs=1e-12)
    # A threshold above every score detects nothing: the null score.
    assert nab_score([(scores, WIN)], threshold=1.5).score == pytest.approx(0.0, abs=1e-12)
    assert nab_score([(scores, WIN)], threshold=0.5).raw == pytest.approx(expected, abs=1e-12)


def test_the_null_baseline_is_a_constant_detector_at_its_best_threshold() -> None:
    # 20 points, anomaly at 15: window [14, 16], probation 3. Always detecting: +1 for the window,
    # 11 FPs before it at -0.11, and three after it at 0.11 * S(0.5), S(1), S(1.5). That beats
    # never detecting (-1), so NAB's null detector would take it.
    scores = np.zeros(20)
    always = 1.0 - 11 * 0.11 + 0.11 * float(scaled_sigmoid(np.array([0.5, 1.0, 1.5])).sum())
    assert always == pytest.approx(-0.5217172, abs=1e-6)
    got = nab_score([(scores, np.array([15]))])
    assert got.null == pytest.approx(always, abs=1e-12)
    assert got.score == pytest.approx(0.0, abs=1e-12)  # the constant detector is the null


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="disjoint"):
        score_series(np.zeros(N, dtype=bool), [(450, 550), (540, 600)])
    with pytest.raises(ValueError, match="inside"):
        score_series(np.zeros(N, dtype=bool), [(950, 1000)])
    with pytest.raises(ValueError, match="NaN"):
        sweep([(np.full(N, np.nan), WIN)])
    with pytest.raises(ValueError, match="unknown profile"):
        nab_score([(np.zeros(N), WIN)], profile="strict")
