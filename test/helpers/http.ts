/** GET http://127.0.0.1:<port><path> (flanneld's /healthz, /readyz, /metrics, in this namespace): status and body. */
export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}
