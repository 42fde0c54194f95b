// One pm2 app per Tessera service. Instances per service come from
// TESSERA_<SERVICE>_INSTANCES (default 1); gRPC servers of one service share
// their port with SO_REUSEPORT, so `pm2 scale <service> N` adds capacity.
// `tessera up` sets PM2_HOME inside the data directory and MESH_PYTHON to the
// project's virtual environment.
const path = require("path");

const SERVICES = ["gateway", "ingest", "embed", "search", "chat", "tensor", "scheduler"];
const python = process.env.MESH_PYTHON || path.join(__dirname, ".venv", "bin", "python");
const dataDir = path.resolve(__dirname, process.env.TESSERA_DATA_DIR || ".tessera");
const graceMs = Math.round(parseFloat(process.env.TESSERA_GRACE_S || "10") * 1000);

// Only settings travel to the services: TESSERA_* and the few a library reads.
const env = { PYTHONUNBUFFERED: "1", HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", TESSERA_DATA_DIR: dataDir };
for (const [key, value] of Object.entries(process.env)) {
  if (key.startsWith("TESSERA_") && key !== "TESSERA_DATA_DIR") env[key] = value;
}

module.exports = {
  apps: SERVICES.map((name) => ({
    name,
    script: python,
    args: ["-m", `services.${name}`],
    interpreter: "none",
    cwd: __dirname,
    exec_mode: "fork",
    instances: parseInt(process.env[`TESSERA_${name.toUpperCase()}_INSTANCES`] || "1", 10),
    env,
    autorestart: true,
    max_restarts: 10,
    min_uptime: 5000,
    stop_exit_codes: [2], // bad configuration: restarting cannot help
    kill_signal: "SIGTERM",
    kill_timeout: graceMs + 5000, // drain first, then SIGKILL
    merge_logs: true,
    out_file: path.join(dataDir, "logs", `${name}.out.log`),
    error_file: path.join(dataDir, "logs", `${name}.err.log`),
    time: false,
  })),
};
