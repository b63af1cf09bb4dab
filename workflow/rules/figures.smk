# Tables -> paper figures (PDF for the paper, PNG for the report), and the report itself.


localrules:
    plot_best_so_far,
    plot_ablation,
    plot_raw_returns,


rule plot_best_so_far:  # Figure 3 of the paper, with CIs or single seeds, and reference marks
    input:
        returns=rules.aggregate.output.returns,
    output:
        pdf="results/figures/best_so_far_{x}.pdf",
        png=report(
            "results/figures/best_so_far_{x}.png",
            caption="../report/best_so_far.rst",
            category="Figures",
            labels={"figure": "best-so-far return", "x axis": "{x}"},
        ),
    log:
        "results/logs/plot_best_so_far_{x}.log",
    wildcard_constraints:
        x="trials|steps",
    conda:
        "../../environment.yml"
    params:
        envs=ENVS,
        variants=config["figures"]["best_so_far_variants"],
        palette=config["figures"]["palette"],
        reference_curves=config["figures"]["reference_curves"],
        settings_note=settings_note(),
        ci_method=CI_METHOD,
        x_convention=X_CONVENTION,
        min_seeds_for_band=MIN_SEEDS_FOR_BAND,
    script:
        "../scripts/plot_best_so_far.py"


rule plot_ablation:  # Figure 4 of the paper: model x propagation
    input:
        summary=rules.summarize.output.csv,
        returns=rules.aggregate.output.returns,
    output:
        pdf="results/figures/ablation.pdf",
        png=report(
            "results/figures/ablation.png",
            caption="../report/ablation.rst",
            category="Figures",
            labels={"figure": "ablation"},
        ),
    log:
        "results/logs/plot_ablation.log",
    conda:
        "../../environment.yml"
    params:
        envs=ENVS,
        settings_note=settings_note(),
        ci_method=CI_METHOD,
    script:
        "../scripts/plot_ablation.py"


rule plot_raw_returns:
    input:
        returns=rules.aggregate.output.returns,
    output:
        pdf="results/figures/raw_returns.pdf",
        png=report(
            "results/figures/raw_returns.png",
            caption="../report/raw_returns.rst",
            category="Figures",
            labels={"figure": "per-trial return"},
        ),
    log:
        "results/logs/plot_raw_returns.log",
    conda:
        "../../environment.yml"
    params:
        envs=ENVS,
        variants=config["figures"]["best_so_far_variants"],
        palette=config["figures"]["palette"],
        settings_note=settings_note(),
    script:
        "../scripts/plot_raw_returns.py"


rule figures:  # regenerate tables and figures only (with existing_runs: no training at all)
    input:
        analysis_outputs(),


rule report:  # the HTML report, built by the main command (`snakemake --report` underneath)
    input:
        analysis_outputs(),
    output:
        report="results/report.html",
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/report.py"
