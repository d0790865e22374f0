// A remote-function server on the official StateFun JavaScript SDK
// (apache-flink-statefun 3.3.0), for sluice's protocol compatibility test
// (tests/remote_compat.test.cpp). The same functions are written in C++
// there; both servers get the same requests and must answer the same.
//
//   node server.js <port>     (0 = pick a free port)
//
// Prints "listening on <port>" once it accepts connections; 127.0.0.1 only.

"use strict";

const http = require("http");
const {
  StateFun,
  messageBuilder,
  egressMessageBuilder,
  kafkaEgressMessage,
} = require("apache-flink-statefun");

const statefun = new StateFun();

// example/greeter: counts greetings per id, remembers the last name, audits
// each greeting, sends a Kafka record, and keeps one reminder scheduled
// (cancel + reschedule under a fixed token). "forget" deletes all state;
// with a caller, the caller gets the count back.
statefun.bind({
  typename: "example/greeter",
  specs: [
    { name: "seen", type: StateFun.intType(), expireAfterCall: 86400000 },
    { name: "last_name", type: StateFun.stringType() },
  ],
  fn(context, message) {
    const name = message.asString();
    if (name === "forget") {
      context.storage.seen = null;
      context.storage.last_name = null;
      context.cancelDelayedMessage(`reminder-${context.self.id}`);
      return;
    }
    const seen = (context.storage.seen || 0) + 1;
    context.storage.seen = seen;
    context.storage.last_name = name;
    context.send(messageBuilder({
      typename: "example/audit",
      id: context.self.id,
      value: { name: name, seen: seen },
      valueType: StateFun.jsonType("example/AuditEntry"),
    }));
    context.send(kafkaEgressMessage({
      typename: "example/greets",
      topic: "greetings",
      key: context.self.id,
      value: `Hello ${name}, #${seen}`,
    }));
    context.cancelDelayedMessage(`reminder-${context.self.id}`);
    context.sendAfter(60000, messageBuilder({
      typename: "example/greeter",
      id: context.self.id,
      value: "reminder",
      valueType: StateFun.stringType(),
    }), `reminder-${context.self.id}`);
    if (context.caller) {
      context.send(messageBuilder({
        typename: context.caller.namespace + "/" + context.caller.name,
        id: context.caller.id,
        value: seen,
        valueType: StateFun.intType(),
      }));
    }
  },
});

// example/audit: counts audit entries (expire 5 s after write) and logs each
// to the example/audit-log egress as a string.
statefun.bind({
  typename: "example/audit",
  specs: [{ name: "entries", type: StateFun.intType(), expireAfterWrite: 5000 }],
  fn(context, message) {
    const entry = message.as(StateFun.jsonType("example/AuditEntry"));
    const entries = (context.storage.entries || 0) + 1;
    context.storage.entries = entries;
    context.send(egressMessageBuilder({
      typename: "example/audit-log",
      value: `${entry.name} seen ${entry.seen} time(s), entry ${entries}`,
      valueType: StateFun.stringType(),
    }));
  },
});

// example/stateless: no state; sends a delayed message without a token and
// echoes its int argument doubled to the caller or to itself.
statefun.bind({
  typename: "example/stateless",
  specs: [],
  fn(context, message) {
    const n = message.asInt();
    context.sendAfter(1500, messageBuilder({
      typename: "example/stateless",
      id: context.self.id,
      value: n + 1,
      valueType: StateFun.intType(),
    }));
    context.send(messageBuilder({
      typename: "example/stateless",
      id: "echo",
      value: n * 2,
      valueType: StateFun.intType(),
    }));
  },
});

// test/reminder (tests/compat_runtime.test.cpp): "schedule:<ms>" schedules a
// "ring" to itself under a cancellation token, "cancel" cancels it; a ring
// is reported to the test/out egress.
statefun.bind({
  typename: "test/reminder",
  specs: [],
  fn(context, message) {
    const text = message.asString();
    const token = `ring-${context.self.id}`;
    if (text.startsWith("schedule:")) {
      context.sendAfter(Number(text.substring(9)), messageBuilder({
        typename: "test/reminder",
        id: context.self.id,
        value: "ring",
        valueType: StateFun.stringType(),
      }), token);
    } else if (text === "cancel") {
      context.cancelDelayedMessage(token);
    } else {
      context.send(egressMessageBuilder({
        typename: "test/out",
        value: `rang ${context.self.id}`,
        valueType: StateFun.stringType(),
      }));
    }
  },
});

// test/slow: 20 ms per message, so messages to one address queue up behind
// the call in flight and arrive as batches; reports each to test/out.
statefun.bind({
  typename: "test/slow",
  specs: [],
  async fn(context, message) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    context.send(egressMessageBuilder({
      typename: "test/out",
      value: `slow ${context.self.id} ${message.asString()}`,
      valueType: StateFun.stringType(),
    }));
  },
});

const port = Number(process.argv[2] || 0);
const server = http.createServer(statefun.handler());
server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
