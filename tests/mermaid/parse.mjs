// Parse Mermaid documents with Mermaid's own parser (no browser: jsdom gives it a DOM).
// stdin: a JSON list of documents; stdout: per document what Mermaid read from it, or its error.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const source of JSON.parse(input)) {
  try {
    await mermaid.parse(source);
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(source);
    const db = diagram.db;
    out.push({
      ok: true,
      type: diagram.type,
      vertices: [...db.getVertices().values()].map((v) => ({ id: v.id, text: v.text, classes: v.classes, type: v.type ?? null })),
      edges: db.getEdges().map((e) => ({ start: e.start, end: e.end, text: e.text, stroke: e.stroke })),
      subgraphs: db.getSubGraphs().map((s) => ({ id: s.id, title: s.title, nodes: s.nodes })),
      classes: [...db.getClasses().keys()],
    });
  } catch (error) {
    out.push({ ok: false, error: String((error && error.message) || error).slice(0, 800) });
  }
}
process.stdout.write(JSON.stringify(out));
