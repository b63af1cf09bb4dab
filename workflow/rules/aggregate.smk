# Run directories -> the tidy table and run list -> summary, configuration and fidelity tables
# (CSV / Markdown / LaTeX files; HTML for the report).


localrules:
    aggregate,
    summarize,
    configuration,
    fidelity,


rule aggregate:  # partial runs: left out with a warning, or kept and marked (include_partial)
    input:
        run_inputs,
    output:
        returns=f"{OUT}/tables/returns.csv",
        runs=f"{OUT}/tables/runs.csv",
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        "../../environment.yml"
    params:
        include_partial=INCLUDE_PARTIAL,
    script:
        "../scripts/aggregate.py"


rule summarize:
    input:
        returns=rules.aggregate.output.returns,
        runs=rules.aggregate.output.runs,
    output:
        csv=f"{OUT}/tables/final_returns.csv",
        markdown=f"{OUT}/tables/final_returns.md",
        latex=f"{OUT}/tables/final_returns.tex",
        html=report(
            f"{OUT}/tables/final_returns.html",
            caption="../report/final_returns.rst",
            category="Tables",
            labels={"table": "final best-so-far and cost"},
        ),
    log:
        f"{OUT}/logs/summarize.log",
    conda:
        "../../environment.yml"
    params:
        thresholds=config["figures"]["thresholds"],
        benchmarks=f"{OUT}/benchmarks/train",
        settings_note=settings_note(),
        ci_method=CI_METHOD,
    script:
        "../scripts/summarize.py"


rule configuration:  # what every experiment ran, against the paper's defaults
    input:
        runs=rules.aggregate.output.runs,
    output:
        markdown=f"{OUT}/tables/configuration.md",
        html=report(
            f"{OUT}/tables/configuration.html",
            caption="../report/configuration.rst",
            category="Configuration",
            labels={"table": "resolved settings vs the paper's"},
        ),
    log:
        f"{OUT}/logs/configuration.log",
    conda:
        "../../environment.yml"
    params:
        run_dirs=lambda wildcards, input: [str(Path(p).parent) for p in run_inputs(wildcards)],
    script:
        "../scripts/configuration.py"


rule fidelity:  # the pre-registered runs against the original's curves (preregistered:)
    input:
        runs=fidelity_inputs,
        reference=config["figures"].get("reference_curves") or [],
    output:
        markdown=f"{OUT}/tables/fidelity.md",
        csv=f"{OUT}/tables/fidelity.csv",
        html=report(
            f"{OUT}/tables/fidelity.html",
            caption="../report/fidelity.rst",
            category="Tables",
            labels={"table": "ours vs the original's curves"},
        ),
        pdf=f"{OUT}/figures/fidelity.pdf",
        png=report(
            f"{OUT}/figures/fidelity.png",
            caption="../report/fidelity_figure.rst",
            category="Figures",
            labels={"figure": "ours vs the original's curves"},
        ),
    log:
        f"{OUT}/logs/fidelity.log",
    conda:
        "../../environment.yml"
    params:
        envs=ENVS,
        source=CONFIG_SOURCE,
        fidelity_root=FIDELITY_ROOT,
        colour=config["figures"]["palette"].get(REFERENCE_VARIANT, "#d62728"),
    script:
        "../scripts/fidelity.py"
