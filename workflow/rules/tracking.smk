# MLflow is a live view of the run directories (the files are the source of truth).


localrules:
    init_mlflow,
    ingest_mlflow,


rule init_mlflow:  # every training job waits for this: first writers race on schema creation
    output:
        touch(f"{OUT}/mlflow.ready"),
    log:
        f"{OUT}/logs/init_mlflow.log",
    conda:
        "../../environment.yml"
    params:
        tracking_uri=config["mlflow"]["tracking_uri"],
        envs=ENVS,  # experiment names: pets_core.results.naming.experiment_name
    script:
        "../scripts/init_mlflow.py"


rule ingest_mlflow:  # idempotent: adds or completes runs whose live logging was skipped
    input:
        done_markers(),
    output:
        touch(f"{OUT}/mlflow.ingested"),
    log:
        f"{OUT}/logs/ingest_mlflow.log",
    conda:
        "../../environment.yml"
    params:
        tracking_uri=config["mlflow"]["tracking_uri"],
    shell:
        f"python -m pets_core.ingest {RUNS_ROOT} "
        "--mlflow-uri {params.tracking_uri:q} > {log:q} 2>&1"
