"""The detector's parameters (the manifest's `preprocessing.detector`) and the parts it is made of."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Every part that can give a point its score, in the order the state lays them out. `spike` is the
# rule that always alerts on a value far outside the series' recent range (it has no tail of its own).
PARTS = ("vae", "level", "season", "drift", "far", "flat", "spike")
TAIL_PARTS = PARTS[:5]  # the parts judged against the tail of the series' own scores of that part
# log(EPS + raw score) is what each tail part's statistics follow: a floor under the log of a raw
# score that is often 0.
EPS = {"vae": 1e-3, "level": 0.1, "season": 0.1, "drift": 0.1, "far": 0.1}
# The least mean excess of each part's log scores over their tail quantile, in multiples of
# DetectorParams.excess_floor. The vae part's score is a square, so its log excesses are twice a
# deviation's; the drift part's moves in small steps on counts and needs a wider tail.
EXCESS_FLOOR_FACTOR = {"vae": 3.0, "level": 1.0, "season": 1.0, "drift": 2.0, "far": 1.0}
# Seasonal candidates: period in seconds, and the most phase bins a series' profile may have.
SEASONS = {"day": (86_400.0, 288), "week": (604_800.0, 336)}


class PartPrior(BaseModel):
    """Where a series' tail statistics of one part start, before its own points have moved them."""

    model_config = ConfigDict(frozen=True)

    quantile: float = Field(..., description="The tail_quantile of log(eps + raw score)")
    excess: float = Field(..., gt=0, description="Mean excess of log(eps + raw score) over that quantile")


class DetectorParams(BaseModel):
    """How a series' points become a score, an alert and the part that fired (schemas/detect/)."""

    model_config = ConfigDict(frozen=True)

    method: str = Field("seasonal-peaks-over-threshold", description="See schemas/detect/__init__.py")
    threshold: float = Field(
        4.0,
        gt=0,
        description="Alert when the score reaches this: -log10 of the tail probability of the point's "
        "most surprising part (4 = 1 in 10,000), or of a run of surprising points taken together",
    )
    event_level: float = Field(
        3.0,
        gt=0,
        description="A score this high is an event whatever the alert threshold: the cooldown starts, "
        "the flat part's run is known, and tails learn no excess beyond it",
    )
    tail_quantile: float = Field(
        0.99,
        gt=0.5,
        lt=1,
        description="Each part's scores above this quantile of the series' own are its tail",
    )
    quantile_step: float = Field(
        0.2, gt=0, description="How far (in mean excesses) one point moves the quantile estimate"
    )
    adapt_halflife: float = Field(
        1000.0, gt=1, description="Half-life, in scored points, of each series' score statistics"
    )
    warmup: int = Field(10, ge=0, description="Scored points a series only learns from before it alerts")
    prior_points: float = Field(
        20.0, ge=0, description="Weight of the priors, in points, against a series' first scores"
    )
    cooldown_halflife: float = Field(
        12.0, gt=0, description="After an event the bar rises to twice its score and halves back in this"
    )
    excess_floor: float = Field(
        0.13, gt=0, description="Least mean excess of log scores over the quantile: no series is too quiet"
    )
    level_scale_floor: float = Field(
        1.0,
        ge=0,
        description="The level part's scale is at least this share of the series' typical window scale, "
        "so a window that happens to be calm does not turn ordinary noise into an outlier",
    )
    seasonal: bool = Field(True, description="Learn daily and weekly profiles and judge points against them")
    season_advantage: float = Field(
        0.75,
        gt=0,
        lt=1,
        description="A seasonal profile is used once its prediction error is below this share of the "
        "error without one",
    )
    season_min_periods: float = Field(1.0, gt=0, description="Periods a profile must have predicted first")
    season_level_rate: float = Field(0.1, gt=0, lt=1, description="Smoothing of a seasonal model's level")
    season_profile_rate: float = Field(0.25, gt=0, lt=1, description="Smoothing of a profile per period")
    season_scale_rate: float = Field(
        0.25, gt=0, lt=1, description="Smoothing of a profile's scale per period"
    )
    season_cap: float = Field(
        1.0,
        ge=0,
        description="Where a seasonal profile is used, the other parts' surprise may exceed its own by at "
        "most this: a point the same phase of earlier periods explains is not anomalous",
    )
    drift_fast: float = Field(8.0, gt=1, description="Half-life, in points, of the drift part's short mean")
    drift_slow: float = Field(256.0, gt=1, description="Half-life, in points, of the drift part's long mean")
    far_halflife: float = Field(
        2000.0, gt=1, description="Half-life, in points, of the long-run level and spread the far part uses"
    )
    accumulate_from: float = Field(
        1.5,
        ge=0,
        description="Surprises above this add up over consecutive points, so a small deviation that "
        "lasts reaches the threshold early (sum of excesses / sqrt(points))",
    )
    accumulate_decay: float = Field(0.8, ge=0, lt=1, description="Per point decay of that sum")
    spike_ratio: float = Field(
        20.0,
        gt=1,
        description="A value this many times the series' recent range away from its window's median "
        "always alerts, whatever the tails have learnt",
    )
    flat_tolerance: float = Field(
        1e-3, ge=0, description="Values within this share of the window's scale count as equal (flat part)"
    )
    flat_min_run: int = Field(8, ge=2, description="A flat run shorter than this never alerts")
    flat_ratio: float = Field(
        2.5, gt=1, description="A flat run alerts when this many times the series' longest recent run"
    )
    flat_min_changes: int = Field(
        3, ge=0, description="A series judges flat runs only after its value has changed this many times"
    )
    parts: tuple[str, ...] = Field(PARTS, description="Parts that may alert")
    priors: dict[str, PartPrior] = Field(
        default_factory=dict, description="Starting statistics per part (from training's validation scores)"
    )
