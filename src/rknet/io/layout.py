"""The names of the files in a run folder and in a comparison folder, in one place."""

# A run folder (rknet train --out OUT)
CONFIG = "config.json"  # the resolved training options
METRICS = "metrics.jsonl"  # one JSON object per epoch
TENSORBOARD = "tensorboard"  # the same scalars as TensorBoard events
CHECKPOINT = "checkpoint.pt"  # everything to resume, sealed with a SHA-256
PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before it
MODEL = "model.pt"  # the best-by-validation model: weights, network spec, training options
PRETRAINED = "pretrained"  # the best model again, shareable: the two files below (rknet.save_pretrained)
SUMMARY = "summary.json"  # test figures and the configuration, once the run ends
LOCK = ".lock"  # held while a process trains or resumes the run
EVALUATION = "eval-{stamp}.json"  # one `rknet eval` table per evaluation, stamp: UTC YYYYMMDD-HHMMSS
COMPARE_LOG = "compare.log"  # the run's log when trained by `rknet compare`
COMPARE_SIDECAR = "compare.json"  # what `rknet compare` measured around the run (memory, threads, load)

# A save_pretrained folder (OUT/pretrained/ in a run folder, whose own config.json is the training options)
PRETRAINED_WEIGHTS = "model.safetensors"  # every weight and batch-norm statistic, safetensors format
PRETRAINED_CONFIG = "config.json"  # the network spec as plain JSON, with a model_type marker

# A comparison folder (rknet compare --out OUT)
RUNS = "runs"  # one run folder per setting and seed
RESULTS_CSV = "results.csv"
REPORT = "report.md"
COMPARE_SPEC = "compare.json"  # the comparison's normalised spec
