#!/usr/bin/env bash
# Runs the TypeScript and addon suites on other Node.js versions, whose
# binaries come from the npm registry's `node` package. The addon is built
# once with the Node on PATH: it uses N-API only (version 8), so the same
# binary must load unchanged in every Node >= 20.
#   scripts/test-node.sh 22 24 26        each version, the default suites
#   VFU_NODE_PROJECTS="addon" scripts/test-node.sh 26   only these jest projects
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
    echo "usage: scripts/test-node.sh MAJOR..." >&2
    exit 2
fi
projects=${VFU_NODE_PROJECTS:-device addon addon-build}

# A local build or the prebuilt binary (npm pack moves the build into prebuilds/).
node -e "require('node-gyp-build').resolve('.')" 2>/dev/null || npx -y node-gyp rebuild
for major in "$@"; do
    echo "== Node $major"
    # npx puts the package's node first on PATH for the command it runs.
    npx -y -p "node@$major" -c "node --version && node node_modules/jest/bin/jest.js --ci --selectProjects $projects"
done
