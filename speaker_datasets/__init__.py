"""`speaker-datasets`: one console command whose subcommands are the project's commands (speaker_datasets.cli)."""
