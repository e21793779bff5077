// A real y-websocket client for the pad tests: node edit.cjs <serverUrl> <room> <token> <edits> <seed>
// Makes <edits> random edits (paced under the server's rate limit), reports its state vector every
// 100 ms on stdout as JSON lines, and on "dump" (stdin) prints its full state and exits.
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')
const WebSocket = require('ws')
const readline = require('readline')

const [serverUrl, room, token, editsArg, seedArg] = process.argv.slice(2)
const edits = Number(editsArg)
let seed = Number(seedArg)
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

const doc = new Y.Doc()
const code = doc.getText('code')
const provider = new WebsocketProvider(serverUrl, room, doc, {
  WebSocketPolyfill: WebSocket,
  params: { token },
  disableBc: true,
})
provider.awareness.setLocalStateField('user', { name: 'node-' + seedArg, color: '#3a3' })
const b64 = (bytes) => Buffer.from(bytes).toString('base64')
let done = 0
const closes = []
provider.on('connection-close', (event) => closes.push(event ? event.code : null))

const report = () =>
  process.stdout.write(
    JSON.stringify({ sv: b64(Y.encodeStateVector(doc)), done, synced: provider.synced, closes }) + '\n'
  )
setInterval(report, 100)

const edit = () => {
  if (done >= edits) return
  const len = code.length
  if (len > 0 && random() < 0.3) {
    code.delete(Math.floor(random() * len), 1)
  } else {
    code.insert(Math.floor(random() * (len + 1)), 'abcdefghij'[Math.floor(random() * 10)])
  }
  done += 1
  setTimeout(edit, 12)
}
provider.once('sync', () => edit())

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'dump') {
    report()
    process.stdout.write(JSON.stringify({ update: b64(Y.encodeStateAsUpdate(doc)), text: code.toString() }) + '\n')
    provider.destroy()
    process.exit(0)
  }
})
