# The same CLI as an image, for CIs other than GitHub Actions. The install step is the README's.
#   docker build -t inflight-guard . && docker run --rm -v "$PWD:/repo" -w /repo inflight-guard check
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
COPY . /opt/inflight-guard
WORKDIR /opt/inflight-guard
RUN python3 -m pip install --no-cache-dir .
RUN git config --system --add safe.directory '*'
WORKDIR /repo
ENTRYPOINT ["inflight-guard"]
