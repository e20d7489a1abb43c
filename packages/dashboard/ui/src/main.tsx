import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { App } from './app.tsx';
import { readConfig } from './config.ts';

render(<App config={readConfig()} />, document.getElementById('app')!);
