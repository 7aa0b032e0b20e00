/** `f`, callable any number of times, run the first time only (releases that may come from two paths). */
export function once(f: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    f();
  };
}
