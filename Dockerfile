# Custom Beam SDK container for Dataflow workers: the same Beam version as requirements/base.txt, this
# package and its worker dependencies preinstalled, so workers start fast and never pip-install at boot.
# Debian's ffmpeg is installed (faster than the wheel's static build on long files). Build and use:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/speaker-datasets:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/speaker-datasets:0.1.0
#   python -m pipelines.build_dataset ... --runner DataflowRunner \
#       --sdk_container_image REGION-docker.pkg.dev/PROJECT/REPO/speaker-datasets:0.1.0
FROM apache/beam_python3.11_sdk:2.77.0

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/speaker-datasets
COPY requirements/ requirements/
RUN pip install --no-cache-dir -c requirements/constraints.txt -r requirements/base.txt
COPY setup.py MANIFEST.in README.md ./
COPY pipelines/ pipelines/
COPY scrapers/ scrapers/
COPY trainer/ trainer/
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import apache_beam, tensorflow, pipelines.build_dataset; print(apache_beam.__version__)"

# The Beam SDK harness: Dataflow starts workers through it.
ENTRYPOINT ["/opt/apache/beam/boot"]
