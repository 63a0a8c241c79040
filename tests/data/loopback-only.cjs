// Test-only Node preload (NODE_OPTIONS=--require …): published servers such as
// server-everything call `app.listen(PORT)`, which binds every interface. This makes any
// `listen(port[, cb])` bind 127.0.0.1 instead, and announces the real port on stdout so tests
// can pass PORT=0 and never race for a free port.
const net = require("net");
const original = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  const isPort =
    typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first));
  if (!isPort) return original.apply(this, args);
  const callback = args.find((a) => typeof a === "function");
  this.once("listening", () => {
    process.stdout.write(`LISTENING http://127.0.0.1:${this.address().port}\n`);
  });
  return original.call(this, Number(first), "127.0.0.1", callback);
};
