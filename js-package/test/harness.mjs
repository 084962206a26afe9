// A few lines of test runner: one line per test, then `<suite>: N passed, N failed`.
import { strict as assert } from 'node:assert';

export { assert };

export function suite(name) {
  let passed = 0;
  let failed = 0;
  return {
    async test(title, body) {
      try {
        await body();
        passed += 1;
        console.log(`ok - ${title}`);
      } catch (error) {
        failed += 1;
        console.log(`not ok - ${title}\n  ${String(error?.stack || error).split('\n').join('\n  ')}`);
      }
    },
    done() {
      console.log(`${name}: ${passed} passed, ${failed} failed`);
      return failed;
    },
  };
}

/** Expects `promise` to fail with a SiwaError of `code`; returns it. */
export async function rejects(promise, code) {
  try {
    await promise;
  } catch (error) {
    assert.equal(error?.name, 'SiwaError', String(error));
    assert.equal(error.code, code, `${error.code}: ${error.message}`);
    return error;
  }
  throw new assert.AssertionError({ message: `expected ${code}, got success` });
}
