# One image for every liqbot process: workers, beat, producer, flower, and the devnet.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm make && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-dev.txt pyproject.toml package.json package-lock.json ./
RUN pip install --no-cache-dir -r requirements.txt && npm ci --no-audit --no-fund --ignore-scripts
COPY liqbot ./liqbot
COPY celeryconfig.py README.md ./
RUN pip install --no-cache-dir --no-deps -e . && python -c "from liqbot.devnet import artifacts; artifacts.ours('SettableAggregator')"
RUN useradd --create-home liqbot && chown -R liqbot /app
USER liqbot
ENV PYTHONUNBUFFERED=1
