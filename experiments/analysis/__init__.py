"""The results layer: everything between a runs tree (or the committed evidence) and the figures,
figures/REPORT.md and the launches that make them. Importable alike by scripts/, tests and
notebooks; it never trains in-process (launches go through experiments/train.py).

    args           the key=value command line every script reads
    rundata        run groups as tables (runs tree or evidence), seeds, "tuned", budgets
    claims         the statistics and verdict words, and the measures of published numbers
    memory_table   table 1 measured (optimiser state after one step)
    plots/         style.py (the shared look, saving, the plot command line) and one module per
                   figure, each with `plot(scale, runs, out)`
    registry       one entry per figure: its experiments, plot function, claims and published numbers
    report_beyond  the beyond-the-paper rows of the report
    report         figures/REPORT.md
    evidence       the committed per-run-group CSVs behind the figures (figures/data/)
    reproduce      launch a figure's experiments, draw it, export, report
    wandb_pull     W&B runs into the run-directory schema

Adding a figure: docs/adding_a_figure.md.
"""
