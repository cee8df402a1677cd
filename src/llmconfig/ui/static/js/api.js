// The REST client of the panel: every request carries the signed-in token, every failure becomes an ApiError
// whose message is the API's own `detail` (the server writes those for people) and whose `fields` name the
// rejected fields of a 422.

const API = "/api/v1/llm";
const TOKEN_KEY = "llmconfig.token"; // sessionStorage: gone when the browser session ends

export class ApiError extends Error {
  constructor(status, detail, fields = []) {
    super(detail);
    this.status = status;
    this.fields = fields;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

let onRejectedToken = () => {};

/** Calls `handler(message)` whenever the server rejects the token of a signed-in session. */
export function whenTokenRejected(handler) {
  onRejectedToken = handler;
}

/** One JSON request; resolves to the parsed body (null for 204), rejects with an ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token.get() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "Cannot reach the llmconfig server; check that it is running.");
  }
  // The sign-in form probes /interaction-types itself and explains a rejected token there.
  if (response.status === 401 && path !== "/interaction-types") {
    onRejectedToken("Your session ended (the token was rejected); sign in again.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const fields = (data?.errors || []).map((problem) => problem.field);
    throw new ApiError(response.status, data?.detail || `HTTP ${response.status}`, fields);
  }
  return data;
}
