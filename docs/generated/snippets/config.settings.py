@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the AUC gate."""

    min_auc: float = 0.80
    max_auc_drop: float = 0.01
    confidence: float = 0.95


@dataclass(frozen=True)
class DataSettings:
    """Where the training and holdout data come from: the synthetic example, one CSV split in two, or two CSVs."""

    source: str = "synthetic"
    path: Path = Path()
    holdout_path: Path = Path()
    holdout_fraction: float = 0.25
    split_column: str = ""


@dataclass(frozen=True)
class Settings:
    """Where things live and how big the synthetic data sets are."""

    registry: Path = Path("registry")
    data_dir: Path = Path("data")
    artifacts: Path = Path("artifacts")
    seed: int = 0
    train_rows: int = 20_000
    holdout_rows: int = 20_000
    max_psi: float = 0.2
    predictions: Path = Path("predictions")  # this and the next three: the production loop's (production_loop=true)
    feedback: Path = Path("feedback")
    guard_min_rows: int = 5_000
    guard_watch_days: int = 30
    gate: GateSettings = field(default_factory=GateSettings)
    data: DataSettings = field(default_factory=DataSettings)
