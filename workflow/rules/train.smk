# One job = one (env, variant, seed) = one runner invocation; `snakemake -p` prints a command
# anyone can paste to reproduce that run. Only done.json is declared: the runner writes it last,
# and checkpoint.pt / logs.mat are not outputs, so Snakemake never deletes them and a killed job
# resumes from its checkpoint when the workflow runs again. The job's output goes to its log; its
# one line per iteration also goes to Snakemake's terminal (fd 3 = the job's stderr before the
# redirection, given to the runner as --status-fd).


rule train:
    input:
        ancient(f"{OUT}/mlflow.ready"),
    output:
        done=f"{RUN_DIR}/{DONE_JSON}",
    log:
        f"{OUT}/logs/train/{RUN_PATH}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{RUN_PATH}.tsv"
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpu"],  # token: `--resources gpu=4` = 4 concurrent runs per GPU
        mem_mb=config["train"]["mem_mb"],
        runtime=train_runtime,  # minutes
    params:
        run_dir=RUN_DIR,
        variant=variant_args,
        overrides=override_args,
        device=config["device"],
        tracking_uri=config["mlflow"]["tracking_uri"],
        config=EXPERIMENT,  # MLflow tag config: tells this experiment's runs from another's
    shell:
        "python -m pets_core.mbexp -env {wildcards.env} {params.variant} {params.overrides}"
        " --seed {wildcards.seed} --run-dir {params.run_dir:q} --device {params.device}"
        " --threads {threads} --mlflow-uri {params.tracking_uri:q} --tag config {params.config:q}"
        " --status-fd 3 3>&2 >> {log:q} 2>&1"
