// Camunda's JS external task client (camunda-external-task-client-js), unchanged, against the sandbox
// engine: run by tests/sandbox_camunda/test_js_client.py as `node worker.mjs <baseUrl>`. Every handler
// uses the library's own TaskService; the script prints what it saw as one JSON line and exits when
// each topic has been handled (or after 20 s).
import { Client, Variables } from "camunda-external-task-client-js";

const client = new Client({ baseUrl: process.argv[2], workerId: "js-worker", interval: 50,
  asyncResponseTimeout: 200, lockDuration: 10000 });
const seen = {};
const done = new Set();
const finish = () => {
  if (done.size < 4) return;
  client.stop();
  console.log(JSON.stringify(seen));
  process.exit(0);
};
setTimeout(() => { console.log(JSON.stringify({ ...seen, timedOut: true })); process.exit(1); }, 20000);

client.subscribe("js-complete", async ({ task, taskService }) => {
  seen.complete = { amount: task.variables.get("amount"), customer: task.variables.get("customer"),
    customerType: task.variables.getTyped("customer").type, businessKey: task.businessKey };
  const variables = new Variables()
    .set("total", task.variables.get("amount") + 1)
    .setTyped("order", { type: "json", value: { id: 7, lines: ["a", "b"] } })
    .set("approved", true)
    .set("when", new Date(Date.UTC(2024, 0, 15, 12, 0, 0)));
  const local = new Variables().set("scratch", "local only");
  await taskService.complete(task, variables, local);
  done.add("complete");
  finish();
});

client.subscribe("js-lock", async ({ task, taskService }) => {
  if (!seen.lock) {
    await taskService.extendLock(task, 60000);
    seen.lock = { extended: true };
    await taskService.unlock(task);
    seen.lock.unlocked = true;
    return;  // unlocked: the next poll fetches it again
  }
  seen.lock.refetched = true;
  await taskService.complete(task);
  done.add("lock");
  finish();
});

client.subscribe("js-failure", async ({ task, taskService }) => {
  await taskService.handleFailure(task, { errorMessage: "printer on fire", errorDetails: "stack trace",
    retries: 0, retryTimeout: 0 });
  done.add("failure");
  finish();
});

client.subscribe("js-error", async ({ task, taskService }) => {
  await taskService.handleBpmnError(task, "NO_STOCK", "nothing left", new Variables().set("reason", "stock"));
  done.add("error");
  finish();
});
