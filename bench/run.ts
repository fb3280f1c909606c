// Placeholder until the benchmark lands (issue 2 §5).
console.log('remora bench: not built yet');
process.exitCode = 1;
