"""python -m speaker_datasets: the same as the `speaker-datasets` console command."""
import sys

from speaker_datasets.cli import main

if __name__ == "__main__":
    sys.exit(main())
