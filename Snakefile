# PETS (Chua et al., NeurIPS 2018): paper matrix -> training jobs -> MLflow -> tables, figures, report.
#   snakemake --cores 2 --configfile config/quick.yaml     # ~10 min CPU demo
#   snakemake -n                                          # the paper matrix (config/config.yaml)
#   (outputs in results/<name>/: runs, tables, figures, report.html; README "Layout")
#   snakemake figures --cores 2 --config existing_runs=DIR  # tables + figures from logs.mat only
#   snakemake --workflow-profile workflow/profiles/slurm  # SLURM (or .../default: local GPU box)
# Contents: workflow/rules/{common,tracking,train,aggregate,figures,optimizers}.smk
from snakemake.utils import min_version

min_version("9.0")


if not workflow.overwrite_configfiles:  # --configfile X replaces the paper matrix, not merges

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/optimizers.smk"


onsuccess:
    print_summary()


rule all:
    default_target: True
    input:
        final_outputs(),
        analysis_outputs(),
        OPTIMIZER_OUTPUTS,
        rules.report.output,
