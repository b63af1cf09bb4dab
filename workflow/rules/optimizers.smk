# The optimizer comparison (experiment group `optimizers`: CEM, iCEM, MPPI, Random with one
# model / propagation): best-so-far with CIs and planning compute per action, per env.
# Only when the config has an `optimizers` group (config/config.yaml, config/quick_optimizers.yaml).

OPTIMIZERS_GROUP = config["experiments"].get("optimizers")


# Targets of the comparison (none without an `optimizers` group); rule all requests them.
OPTIMIZER_OUTPUTS = (
    [
        f"{OUT}/figures/optimizers.pdf",
        f"{OUT}/figures/optimizers.png",
        f"{OUT}/tables/optimizers.csv",
        f"{OUT}/tables/optimizers.md",
    ]
    if OPTIMIZERS_GROUP
    else []
)


if OPTIMIZERS_GROUP:

    localrules:
        plot_optimizers,

    rule plot_optimizers:
        input:
            returns=rules.aggregate.output.returns,
            runs=run_inputs,
        output:
            pdf=f"{OUT}/figures/optimizers.pdf",
            png=report(
                f"{OUT}/figures/optimizers.png",
                caption="../report/optimizers.rst",
                category="Figures",
                labels={"figure": "optimizers"},
            ),
            csv=report(
                f"{OUT}/tables/optimizers.csv",
                caption="../report/optimizers.rst",
                category="Tables",
            ),
            markdown=f"{OUT}/tables/optimizers.md",
        log:
            f"{OUT}/logs/plot_optimizers.log",
        conda:
            "../../environment.yml"
        params:
            envs=ENVS,
            variants=OPTIMIZERS_GROUP["variants"],
            palette=config["figures"]["palette"],
        script:
            "../scripts/plot_optimizers.py"
