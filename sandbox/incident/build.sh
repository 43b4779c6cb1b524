#!/bin/bash
# Image-time half of the incident: the service user, its world-writable state
# directories, the incident's config and env file, and a venv with the
# vulnerable pins. Database rows are planted at first start by seed.sh.
set -euo pipefail
I=/opt/sandbox/incident
ROOT=/home/litellm/litellm

useradd --create-home --shell /bin/bash litellm
install -d -o litellm -g litellm -m 0755 "$ROOT"
for d in state state/files state/redis state/archive state/archive/backups artifacts bin logs; do
  install -d -o litellm -g litellm -m 0777 "$ROOT/$d"
done
chmod 0775 "$ROOT/state/archive" "$ROOT/logs"
install -o litellm -g litellm -m 0644 "$I/config.yaml" "$ROOT/state/config.generated.yaml"
install -o litellm -g litellm -m 0644 "$I/env.litellm" "$ROOT/env.litellm"

# the venv the incident found: the proxy, then the vulnerable pins on top
runuser -u litellm -- python3 -m venv "$ROOT/venv"
runuser -u litellm -- "$ROOT/venv/bin/pip" install --no-cache-dir -q -r "$I/venv-requirements.txt"
runuser -u litellm -- "$ROOT/venv/bin/pip" install --no-cache-dir -q --no-deps \
  fastapi-users==14.0.2 urllib3==2.5.0 pyasn1==0.6.1

# the real LiteLLM schema, as the pinned litellm-proxy-extras ships it, and a
# root-owned helper venv for seed.py (runs as postgres at first start)
cp -r "$ROOT"/venv/lib/python3*/site-packages/litellm_proxy_extras/migrations /opt/sandbox/migrations
chmod -R a+rX /opt/sandbox
python3 -m venv /opt/sandbox/venv
/opt/sandbox/venv/bin/pip install --no-cache-dir -q 'psycopg[binary]>=3.2,<4'
