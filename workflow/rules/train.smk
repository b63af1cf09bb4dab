# One job = one runner invocation; `snakemake -p` prints a command anyone can paste to reproduce
# it. By default a job is one (env, variant, seed): rule train. With config seeds_per_job: N a job
# runs a group of up to N seeds of one (env, variant) in lockstep (pets_core.mbexp --seeds; groups:
# pets_core.run.matrix.train_jobs), and declares each of its runs' done.json: Snakemake can only
# declare a fixed list of outputs per rule, so each seed group is a rule of its own,
# train_seeds1_2_3 (its variants and envs are wildcards).
# Only done.json is declared: the runner writes it last, and checkpoint.pt / logs.mat are not
# outputs, so Snakemake never deletes them and a killed job resumes from its checkpoint when the
# workflow runs again. A group's done.json are update() outputs: a group job rerun because some of
# its seeds are unfinished keeps the finished seeds' done.json (Snakemake would delete them), and
# the runner skips those seeds. The job's output goes to its log; its one line per iteration also
# goes to Snakemake's terminal (fd 3 = the job's stderr before the redirection, --status-fd).
# Resources: threads and mem_mb are config train's per run times the job's seeds; runtime is
# train.runtime per job (the seeds run in lockstep: see train_runtime); one gpu token per job.

SEED_GROUPS = {}  # seeds -> the variants whose job (in every env) has exactly these seeds
for _env, _variant, _seeds in TRAIN_JOBS:
    SEED_GROUPS.setdefault(_seeds, set()).add(_variant)
if all(len(seeds) == 1 for seeds in SEED_GROUPS):  # seeds_per_job 1: one rule, seed a wildcard
    TRAIN_RULES = [("train", None, VARIANTS)]
else:
    TRAIN_RULES = [
        (f"train_{job_label(seeds).replace('-', '_')}", seeds, sorted(variants))
        for seeds, variants in sorted(SEED_GROUPS.items())
    ]


for _name, _seeds, _variants in TRAIN_RULES:
    _runs = 1 if _seeds is None else len(_seeds)  # runs per job
    _label = job_label("{seed}" if _seeds is None else _seeds)

    rule:
        name:
            _name
        input:
            ancient(f"{OUT}/mlflow.ready"),
        output:
            [f"{RUN_DIR}/{DONE_JSON}"]
            if _seeds is None
            else [update(f"{RUNS_ROOT}/{run_path('{env}', '{variant}', s)}/{DONE_JSON}") for s in _seeds],
        log:
            f"{OUT}/logs/train/{{env}}/{{variant}}/{_label}.log",
        benchmark:
            f"{OUT}/benchmarks/train/{{env}}/{{variant}}/{_label}.tsv"
        wildcard_constraints:
            variant="|".join(_variants),
        conda:
            "../../environment.yml"
        threads: config["train"]["threads"] * _runs
        resources:
            gpu=config["train"]["gpu"],  # token: `--resources gpu=4` = 4 concurrent jobs per GPU
            mem_mb=config["train"]["mem_mb"] * _runs,
            runtime=train_runtime,  # minutes
        params:
            seeds=lambda wildcards, seeds=_seeds: " ".join(
                seed_args(seeds or [wildcards.seed])
            ),
            run_dir=lambda wildcards, seeds=_seeds: run_dir_arg(
                RUNS_ROOT, wildcards.env, wildcards.variant, seeds or [wildcards.seed]
            ),
            variant=variant_args,
            overrides=override_args,
            device=config["device"],
            tracking_uri=config["mlflow"]["tracking_uri"],
            config=EXPERIMENT,  # MLflow tag config: tells this experiment's runs from another's
        shell:
            "python -m pets_core.mbexp -env {wildcards.env} {params.variant} {params.overrides}"
            " {params.seeds} --run-dir {params.run_dir:q} --device {params.device}"
            " --threads {threads} --mlflow-uri {params.tracking_uri:q} --tag config {params.config:q}"
            " --status-fd 3 3>&2 >> {log:q} 2>&1"
