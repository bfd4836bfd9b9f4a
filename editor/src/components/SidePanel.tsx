// Queue and history (interrupt, cancel, move to front, reopen), the gallery, and the run's log.
import { useEffect, useState } from "react";
import { api, withToken } from "../api/http";
import type { JobSummary } from "../api/types";
import { reopenJob } from "../state/controller";
import { outputImages } from "../state/run";
import { useEditor } from "../state/store";

export function SidePanel() {
  const [tab, setTab] = useState<"queue" | "gallery" | "log">("queue");
  return (
    <aside className="side">
      <nav>
        {(["queue", "gallery", "log"] as const).map((t) => (
          <button key={t} className={tab === t ? "on" : ""} data-tab={t} onClick={() => setTab(t)}>{t}</button>
        ))}
      </nav>
      {tab === "queue" && <Jobs />}
      {tab === "gallery" && <Gallery />}
      {tab === "log" && <Log />}
    </aside>
  );
}

function Jobs() {
  const [jobs, setJobs] = useState<JobSummary[]>([]);
  const [queue, setQueue] = useState<string[]>([]);
  const counts = useEditor((s) => s.queueCounts);
  const runs = useEditor((s) => s.runs);
  const refresh = () => {
    api.jobs().then((page) => setJobs(page.jobs)).catch(() => {});
    api.queue().then((q) => setQueue(q.pending.map((j) => j.job_id))).catch(() => {});
  };
  const terminal = Object.values(runs).filter((r) => r.status !== "running" && r.status !== "pending").length;
  useEffect(refresh, [counts, terminal]);
  const act = (f: Promise<unknown>) => f.catch((e) => useEditor.getState().setNotice(String(e.message ?? e))).finally(refresh);
  return (
    <ul className="jobs">
      {jobs.length === 0 && <li className="empty">No runs yet: press Run (Ctrl+Enter).</li>}
      {jobs.map((job) => {
        const status = runs[job.job_id]?.status ?? job.status;
        return (
          <li key={job.job_id} data-job={job.job_id} data-job-status={status}>
            <code>{job.job_id.slice(0, 8)}</code> <span className={`status ${status}`}>{status}</span>
            {status === "pending" && <span> #{queue.indexOf(job.job_id) + 1}</span>}
            <span className="actions">
              {status === "running" && <button onClick={() => act(api.cancel(job.job_id))}>interrupt</button>}
              {status === "pending" && <button onClick={() => act(api.cancel(job.job_id))}>cancel</button>}
              {status === "pending" && <button onClick={() => act(api.front(job.job_id))}>to front</button>}
              <button data-reopen={job.job_id} onClick={() => reopenJob(job.job_id)}>open</button>
            </span>
          </li>
        );
      })}
    </ul>
  );
}

function Gallery() {
  const runs = useEditor((s) => s.runs);
  const images = Object.values(runs).flatMap((r) => Object.values(r.outputs).flatMap((o) => outputImages(o)));
  return (
    <div className="gallery">
      {images.length === 0 && <p className="empty">Images from SaveImage and PreviewImage appear here.</p>}
      {[...images].reverse().map((img) => (
        <a key={img.url} href={withToken(img.url)} target="_blank" rel="noreferrer"><img alt={img.filename} data-gallery-image={img.filename} src={withToken(img.url)} /></a>
      ))}
    </div>
  );
}

function Log() {
  const run = useEditor((s) => (s.shownJob ? s.runs[s.shownJob] : undefined));
  if (!run) return <p className="empty">The shown run's events appear here.</p>;
  return (
    <div className="log" data-log-job={run.jobId} data-log-status={run.status}>
      <p>job <code>{run.jobId.slice(0, 8)}</code>: <b data-job-status-shown>{run.status}</b>, {run.log.length} events</p>
      {run.error && (
        <div className="node-error runtime">
          {run.error.message}
          {run.error.traceback.length > 0 && <details><summary>traceback</summary><pre>{run.error.traceback.join("")}</pre></details>}
        </div>
      )}
      <ol>{run.log.map((e) => <li key={e.seq} data-seq={e.seq}>{e.seq} {e.type}</li>)}</ol>
    </div>
  );
}
