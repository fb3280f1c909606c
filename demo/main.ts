// Placeholder until the demo lands (issue 2 §5).
console.log('remora demo: not built yet');
process.exitCode = 1;
