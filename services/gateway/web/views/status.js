// The Status view (#/status): the mesh's services and infrastructure.

import { ago, h, notice, pathLabel, show, tableRegion } from "./dom.js";
import { api, guarded, headers, request } from "./api.js";

// -- Status --------------------------------------------------------------------------------------------------------

export async function pageStatus() {
  show(h("h1", {}, "Status"), h("p", { class: "muted" }, "Asking every service…"));
  await guarded(async () => {
    const resp = await fetch("/api/v1/status", { headers: headers(false) });
    if (resp.status === 401) {
      await request("GET", "/api/v1/status"); // asks for the key
      return pageStatus();
    }
    const s = await resp.json();
    if (s.error) throw new Error(s.error.message);
    const gpu = s.gpu || {};
    show(h("h1", {}, "Status"),
      notice(s.ok ? "ok" : "error", s.ok ? "Every service is serving." : "Something is down: see below."),
      h("h2", {}, "Services"),
      tableRegion("services", h("table", {}, h("thead", {}, h("tr", {}, ["service", "state", "instances", "address", "uptime", "detail"].map((x) => h("th", {}, x)))),
        h("tbody", {}, (s.services || []).map((x) => h("tr", {}, h("td", {}, x.service), h("td", { class: `state-${x.status}` }, x.status),
          h("td", {}, String(x.instances ?? "?")), h("td", { class: "mono" }, x.address), h("td", {}, x.uptime_s != null ? `${Math.round(x.uptime_s)} s` : ""), h("td", {}, x.detail || "")))))),
      h("h2", {}, "Infrastructure"),
      h("table", {}, h("tbody", {}, (s.infra || []).map((x) => h("tr", {}, h("td", {}, x.name), h("td", { class: `state-${x.status}` }, x.status), h("td", {}, x.detail))))),
      h("h2", {}, "Background work"),
      backlogView(s.backlog || {}),
      h("h2", {}, "Snapshots"),
      snapshotsView(s.snapshots || {}),
      h("h2", {}, "GPU leases"),
      gpu.error ? notice("error", gpu.error) : h("div", {},
        h("p", {}, gpu.cpu_only ? "No GPU: the scheduler runs CPU-only." : `${(gpu.devices || []).length} device(s).`),
        (gpu.devices || []).length ? h("table", {}, h("tbody", {}, gpu.devices.map((dv) => h("tr", {}, h("td", {}, `${dv.index}: ${dv.name}`),
          h("td", {}, `${(dv.granted_bytes / 2 ** 30).toFixed(1)} of ${(dv.total_bytes / 2 ** 30).toFixed(1)} GiB granted`), h("td", {}, dv.source))))) : null,
        (gpu.leases || []).length ? tableRegion("GPU leases", h("table", {}, h("thead", {}, h("tr", {}, ["service", "device", "priority", "MiB", "expires"].map((x) => h("th", {}, x)))),
          h("tbody", {}, gpu.leases.map((l) => h("tr", {}, h("td", {}, l.service), h("td", {}, l.device), h("td", {}, l.priority), h("td", {}, String(Math.round(l.bytes / 2 ** 20))), h("td", {}, l.expires_at))))))
          : h("p", { class: "muted small" }, "No leases held."),
        (gpu.queue || []).length ? h("p", {}, `${gpu.queue.length} waiting for a lease.`) : null),
      s.gateway ? h("p", { class: "muted small" }, `Gateway: ${s.gateway.open_streams} open answer streams.`) : null);
  });
}

function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function eta(seconds, waiting) {
  if (!waiting) return "nothing waits";
  return seconds ? `done in about ${duration(seconds)} at that pace` : "no pace yet";
}

/** Embedding and enrichment still to do, their pace over the last ten minutes and an ETA (ingest's backlog). */
function backlogView(b) {
  if (b.error) return notice("error", b.error);
  return h("table", { class: "backlog" }, h("tbody", {},
    h("tr", {}, h("td", {}, "embedding"), h("td", {}, `${b.chunks_waiting ?? 0} chunks wait`),
      h("td", {}, `${Math.round(b.chunks_per_minute ?? 0)}/min lately`), h("td", {}, eta(b.embed_eta_s, b.chunks_waiting))),
    h("tr", {}, h("td", {}, "enrichment"), h("td", {}, `${b.enrich_waiting ?? 0} documents wait`),
      h("td", {}, `${(b.enriched_per_minute ?? 0).toFixed(1)}/min lately`), h("td", {}, eta(b.enrich_eta_s, b.enrich_waiting))),
    b.enrich_deferred ? h("tr", {}, h("td", {}, ""), h("td", { colspan: "3" },
      `${b.enrich_deferred} documents of large imports wait until they are opened, cited or asked for.`)) : null));
}

// The newest snapshot and the schedule: made by `tessera snapshot create`, or by ingest every TESSERA_SNAPSHOT_EVERY.
function snapshotsView(s) {
  const schedule = s.every && s.every !== "off" ? `A snapshot every ${s.every}, the last ${s.keep} kept` : "No schedule (TESSERA_SNAPSHOT_EVERY=off)";
  if (!s.last) {
    return h("p", { id: "snapshots" }, `No snapshot yet. ${schedule}; make one with `, h("code", {}, "tessera snapshot create"), ".");
  }
  const size = s.last.bytes >= 2 ** 20 ? `${(s.last.bytes / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(s.last.bytes / 1024)} KiB`;
  return h("p", { id: "snapshots" }, `Last snapshot ${ago(s.last.created_at)}: ${s.last.documents} documents, ${size}, `,
    pathLabel(s.last.path, "", "", s.dir), `. ${s.count} in ${s.dir}. ${schedule}.`);
}
