# The mesoslite image: the `mesoslite` command with the Docker SDK, for the
# masters and agents of docker-compose.yml.  Build with `docker build -t mesoslite .`
# (needs the python:3.11-slim base image from a registry).
FROM python:3.11-slim
WORKDIR /opt/mesoslite
# haproxy for `mesoslite lb`.
RUN apt-get update && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
COPY setup.cfg pyproject.toml README.md ./
COPY mesoslite ./mesoslite
COPY frameworks ./frameworks
RUN pip install --no-cache-dir '.[docker]'
ENTRYPOINT ["mesoslite"]
CMD ["--help"]
