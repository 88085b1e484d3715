# Custom Beam SDK container for Dataflow workers: the same Beam version as requirements/base.txt, this
# package and its worker dependencies preinstalled, so workers start fast and never pip-install at boot.
# Audio is decoded in-process by the pinned av wheel (FFmpeg 8.1.2's libraries; README, Decoding): no system
# ffmpeg is needed (`--decoder ffmpeg` falls back to the imageio-ffmpeg binary). Build and use:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/speaker-datasets:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/speaker-datasets:0.1.0
#   python -m pipelines.build_dataset ... --runner DataflowRunner \
#       --sdk_container_image REGION-docker.pkg.dev/PROJECT/REPO/speaker-datasets:0.1.0
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/speaker-datasets
COPY requirements/ requirements/
RUN pip install --no-cache-dir -c requirements/constraints.txt -r requirements/base.txt
COPY setup.py MANIFEST.in README.md ./
COPY pipelines/ pipelines/
COPY scrapers/ scrapers/
COPY trainer/ trainer/
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import apache_beam, tensorflow, pipelines.build_dataset, av; print(apache_beam.__version__)" \
    && python -c "from pipelines.decode import decoder_build; print(decoder_build())"

# The Beam SDK harness: Dataflow starts workers through it.
ENTRYPOINT ["/opt/apache/beam/boot"]
