@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the AUC gate."""

    min_auc: float = 0.80
    max_auc_drop: float = 0.01
    confidence: float = 0.95


@dataclass(frozen=True)
class Settings:
    """Where things live and how big the synthetic data sets are."""

    registry: Path = Path("registry")
    data_dir: Path = Path("data")
    artifacts: Path = Path("artifacts")
    predictions: Path = Path("predictions")
    seed: int = 0
    train_rows: int = 20_000
    holdout_rows: int = 20_000
    max_psi: float = 0.2
    gate: GateSettings = field(default_factory=GateSettings)
