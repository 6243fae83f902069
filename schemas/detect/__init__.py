"""The metric detector that the worker and training's offline scorer share, point by point.

A point is scored when it ends a full window of W raw values (oldest first). Three steps:

1. `window_features` (stateless, vectorised over a batch of windows; features.py): the window is
   scaled by its own past (median, IQR / 1.349), so the scaling follows the series. The scaled
   window, clipped, is the VAE's input; the graph's score is the VAE's squared reconstruction error
   of the last point.
2. `decide` (stateful, vectorised over a batch of points of distinct series; decide.py) scores the
   point by several parts, each looking at a different context:
     vae     the window VAE's score: the shape of the last W points (the heart of the detector)
     level   |x - median| of the last point against its window's past, on the window's robust scale
             (never smaller than the series' typical one; after a flat past, half its largest step)
     season  the point against the same phase of earlier days or weeks: a Holt-Winters model per
             candidate period (a level and a profile of up to 288 / 336 phase bins, robust updates),
             used once it predicts clearly better than a plain level (`season_advantage`); the
             residual on that phase's own scale. A point the season explains is not anomalous to
             the other parts either (`season_cap`): a daily peak, a nightly batch job, a square wave
     drift   a short mean (half-life 8 points) against a long one (256) of the deseasonalised values:
             a slow drift or a changed trend that no single window shows
     far     the point against the series' long-run level and spread (half-life 2,000 points): a
             robust rolling z-score that adapts, for values that leave the series' usual range slowly
     flat    the run of (nearly) equal values ending here, against the longest of the series' recent
             runs (a stuck sensor, a flat-lined count), judged once the series has changed a few times
   Each tail part's raw score becomes a *surprise* against that series' own recent scores of that
   part, by peaks over threshold (as SPOT does, with an exponential tail in log space):
   surprise = -log10 P(score >= this one). The point's surprise is the largest part's.
3. Post-processing (also decide.py): surprising points in a row add up (sum of excesses over
   `accumulate_from`, divided by the square root of their number), so a small deviation that lasts
   reaches the threshold early while a single noisy point does not; a value more than `spike_ratio`
   times the series' recent range away from its window's median always alerts (`spike`); a score of
   `event_level` (3) or more is an event: the bar rises to twice its score and halves back every
   `cooldown_halflife` points, so a lasting anomaly raises an alert about once a half-life, not one
   per point. An alert needs `threshold` (4: a tail probability of 1 in 10,000) times that bar /
   event_level.

The state of a series is a row of bounded matrices (state.py): 38 floats and two profiles of 624
phase bins (float32), 5.3 KB; training primes the rows of the series it saw (`StateFile`), so a
known series starts warm, and a new one starts from priors fitted in training. `replay` runs whole
series offline in lockstep, exactly as the worker decides them point by point.
"""

from schemas.detect.decide import Decision, Decisions, PointInputs, decide, decide_in_order
from schemas.detect.features import IQR_TO_SIGMA, MAX_RAW, MIN_SCALE, WindowFeatures, window_features
from schemas.detect.params import EPS, PARTS, SEASONS, TAIL_PARTS, DetectorParams, PartPrior
from schemas.detect.replay import SeriesPoints, replay
from schemas.detect.state import Col, StateFile, StateMatrices, bytes_per_row, new_row

__all__ = [
    "EPS",
    "IQR_TO_SIGMA",
    "MAX_RAW",
    "MIN_SCALE",
    "PARTS",
    "SEASONS",
    "TAIL_PARTS",
    "Col",
    "Decision",
    "Decisions",
    "DetectorParams",
    "PartPrior",
    "PointInputs",
    "SeriesPoints",
    "StateFile",
    "StateMatrices",
    "WindowFeatures",
    "bytes_per_row",
    "decide",
    "decide_in_order",
    "new_row",
    "replay",
    "window_features",
]
