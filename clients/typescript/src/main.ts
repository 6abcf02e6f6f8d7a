// node dist/main.js <base url> <username> <password> <deal id>: runs the flow, prints its result as JSON.
import { run } from "./flow.js";

const [baseUrl, username, password, dealId] = process.argv.slice(2);
if (!baseUrl || !username || !password || !dealId) {
  console.error("usage: node dist/main.js <base url> <username> <password> <deal id>");
  process.exit(2);
}
run(baseUrl, username, password, dealId).then(
  (result) => console.log(JSON.stringify(result)),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
