// `npm start`: the whole chain on one machine, no AWS account needed.
// proxy-server (:9090) <- gateway stand-in (:9080, checks SigV4) <- proxy-client (:8080)
import { startChain } from './chain.mjs';

const port = (name, fallback) => Number(process.env[name] ?? fallback);

const chain = await startChain({
  serverPort: port('SERVER_LISTEN_PORT', 9090),
  gatewayPort: port('GATEWAY_LISTEN_PORT', 9080),
  clientPort: port('CLIENT_LISTEN_PORT', 8080),
  echo: true,
}).catch((error) => {
  console.error(`chunkgate could not start: ${error.message}`);
  process.exit(1);
});

console.log(`
chunkgate is running on this machine:
  proxy-client  ${chain.client.url}   <- point your applications here
  gateway       ${chain.gateway.url}   (local stand-in for API Gateway, checks SigV4)
  proxy-server  ${chain.server.url}

Try it:
  curl -x ${chain.proxyUrl} http://example.com/
  HTTP_PROXY=${chain.proxyUrl} your-app
  python3 -c "import requests; print(requests.get('http://example.com/', proxies={'http': '${chain.proxyUrl}'}).status_code)"

Ctrl-C stops all three.
`);

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await chain.stop();
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
for (const app of [chain.server, chain.gateway, chain.client]) {
  app.child.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(
      `${app.app} stopped (${signal ?? code}); stopping the others.`,
    );
    void stop(1);
  });
}
