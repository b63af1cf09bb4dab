# Run directories -> one tidy table -> the summary table (Markdown, LaTeX, CSV).


localrules:
    aggregate,
    summarize,


rule aggregate:
    input:
        run_inputs,
    output:
        returns="results/tables/returns.csv",
    log:
        "results/logs/aggregate.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/aggregate.py"


rule summarize:
    input:
        returns=rules.aggregate.output.returns,
    output:
        csv=report(
            "results/tables/final_returns.csv",
            caption="../report/final_returns.rst",
            category="Tables",
        ),
        markdown="results/tables/final_returns.md",
        latex="results/tables/final_returns.tex",
    log:
        "results/logs/summarize.log",
    conda:
        "../../environment.yml"
    params:
        thresholds=config["figures"]["thresholds"],
        benchmarks="results/benchmarks/train",
        gpu_per_run=config["train"]["gpu"] if config["device"] != "cpu" else 0,
    script:
        "../scripts/summarize.py"
