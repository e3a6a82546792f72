// A small chat page on @langchain/langgraph-sdk's useStream, the way Agent Chat UI uses it: a thread list
// searched by graph_id, the thread id in the URL (so a reload reopens it), and approval interrupts in
// LangChain's human-in-the-loop shape answered with `submit(undefined, {command: {resume}})`.
// Query parameters: `api` (Loom's URL), `assistant` (default `support`), `thread`.
import { useCallback, useEffect, useMemo, useState } from "react";
import { createRoot } from "react-dom/client";
import { Client } from "@langchain/langgraph-sdk";
import { useStream } from "@langchain/langgraph-sdk/react";

const params = new URLSearchParams(window.location.search);
const apiUrl = params.get("api");
const assistantId = params.get("assistant") ?? "support";

function textOf(message) {
  const { content } = message;
  if (typeof content === "string") return content;
  return (content ?? []).map((part) => part.text ?? "").join("");
}

function useThreadInUrl() {
  const [threadId, setThreadId] = useState(params.get("thread"));
  const choose = useCallback((id) => {
    const url = new URL(window.location.href);
    if (id) url.searchParams.set("thread", id);
    else url.searchParams.delete("thread");
    window.history.replaceState(null, "", url);
    setThreadId(id);
  }, []);
  return [threadId, choose];
}

function ThreadList({ client, version, current, onOpen }) {
  const [threads, setThreads] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    client.threads
      .search({ metadata: { graph_id: assistantId }, limit: 50 })
      .then(setThreads, (e) => setError(String(e)));
  }, [client, version]);
  if (error) return <p id="threads-error">{error}</p>;
  return (
    <ul id="threads" data-loaded={String(threads != null)}>
      {(threads ?? []).map((thread) => {
        const first = thread.values?.messages?.[0];
        return (
          <li key={thread.thread_id} data-thread-id={thread.thread_id} className={thread.thread_id === current ? "current" : ""}>
            <button onClick={() => onOpen(thread.thread_id)}>{first ? textOf(first) : thread.thread_id}</button>
          </li>
        );
      })}
    </ul>
  );
}

function Approval({ request, onDecide }) {
  const [reason, setReason] = useState("");
  const allowed = (decision) => request.review_configs.every((c) => c.allowed_decisions.includes(decision));
  const all = (decision) => request.action_requests.map(() => decision);
  return (
    <div id="approval">
      {request.action_requests.map((action, i) => (
        <div className="action" key={i} data-name={action.name}>
          <b>{action.name}</b> <code>{JSON.stringify(action.args)}</code>
          <p>{action.description}</p>
        </div>
      ))}
      <input id="reason" placeholder="why (for a rejection)" value={reason} onChange={(e) => setReason(e.target.value)} />
      {allowed("approve") && <button id="approve" onClick={() => onDecide(all({ type: "approve" }))}>Approve</button>}
      {allowed("reject") && <button id="reject" onClick={() => onDecide(all({ type: "reject", message: reason }))}>Reject</button>}
    </div>
  );
}

function App() {
  const client = useMemo(() => new Client({ apiUrl }), []);
  const [threadId, setThreadId] = useThreadInUrl();
  const [version, setVersion] = useState(0);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState(null);
  const stream = useStream({
    client,
    assistantId,
    threadId,
    onThreadId: setThreadId,
    messagesKey: "messages",
    fetchStateHistory: true,
    onFinish: () => setVersion((v) => v + 1),
    onError: (e) => setError(String(e)),
  });
  const pending = stream.interrupt?.value?.action_requests ? stream.interrupt.value : null;
  const send = (event) => {
    event.preventDefault();
    const message = { id: crypto.randomUUID(), type: "human", content: draft }; // the id lets the streamed copy replace it
    stream.submit(
      { messages: [message] },
      { optimisticValues: (prev) => ({ ...prev, messages: [...(prev.messages ?? []), message] }) },
    );
    setDraft("");
  };
  // Approve resumes as the SDK documents it, reject as Agent Chat UI does (an empty input beside the command).
  const decide = (decisions) =>
    stream.submit(decisions[0].type === "reject" ? {} : undefined, { command: { resume: { decisions } } });
  return (
    <>
      <aside>
        <button id="new-thread" onClick={() => setThreadId(null)}>New thread</button>
        <ThreadList client={client} version={version} current={threadId} onOpen={setThreadId} />
      </aside>
      <section id="chat" data-thread-id={threadId ?? ""} data-loading={String(stream.isLoading || stream.isThreadLoading)}>
        <ol id="messages">
          {stream.messages.map((message, i) => (
            <li key={message.id ?? i} className={message.type}>{textOf(message)}</li>
          ))}
        </ol>
        {pending && !stream.isLoading && <Approval request={pending} onDecide={decide} />}
        {error && <p id="error">{error}</p>}
        <form id="composer" onSubmit={send}>
          <input id="message" value={draft} onChange={(e) => setDraft(e.target.value)} />
          <button id="send" type="submit" disabled={stream.isLoading || !draft}>Send</button>
        </form>
      </section>
    </>
  );
}

createRoot(document.getElementById("root")).render(<App />);
