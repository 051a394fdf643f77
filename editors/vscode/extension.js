// Starts `flotilla lsp` for .flt files. Plain JavaScript, so there is no build step.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

function createClient() {
  const command = vscode.workspace.getConfiguration("flotilla").get("server.path", "flotilla");
  const server = { command, args: ["lsp"], transport: TransportKind.stdio };
  return new LanguageClient(
    "flotilla",
    "Flotilla",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "flotilla" }],
      // Files changed outside the editor (git checkout, generators) are re-analysed.
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.flt") },
    },
  );
}

async function activate(context) {
  client = createClient();
  context.subscriptions.push(
    vscode.commands.registerCommand("flotilla.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      client = createClient();
      await client.start();
    }),
  );
  await client.start();
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
