# GPU image for the CLI and the Label Studio ML backend (`serve`; docker-compose.yml adds Redis).
#   docker build -t empathic .
#   docker build -t empathic --build-arg PRELOAD_MODELS="--face small --voice small" .   # bake weights in
#   docker run --gpus all -v "$PWD:/data" empathic annotate /data/clip.mp4 -o /data/clip.coco.json
# PyTorch's wheels bring their own CUDA libraries; the host needs only the NVIDIA driver and the
# NVIDIA container toolkit. Without a GPU the same image runs on the CPU.
FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    VENV=/opt/venv \
    PYTHON=python3 \
    HF_HOME=/models \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY scripts ./scripts
RUN SKIP_APT=1 scripts/setup.sh

# Weights baked in at build time make the image work offline (HF_HUB_OFFLINE=1 at run time).
ARG PRELOAD_MODELS=""
RUN if [ -n "$PRELOAD_MODELS" ]; then empathic models download $PRELOAD_MODELS; fi

EXPOSE 9090
ENTRYPOINT ["empathic"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9090"]
