# Session environment for shells and ssh commands in this sandbox.
# The host rewrites this file at sandbox start (e.g. `export API_URL=...`); it starts empty.
