export { VERSION } from '@remora/proxy/contract';
