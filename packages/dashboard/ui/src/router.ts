import { useEffect, useState } from 'preact/hooks';

export type Route = { name: 'list' } | { name: 'key'; id: string };

// Two routes: a router library would weigh more than they do.
function parse(base: string): Route {
  const rest = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : '';
  const key = /^\/keys\/([\w-]{1,200})\/?$/.exec(rest);
  return key ? { name: 'key', id: key[1]! } : { name: 'list' };
}

export function hrefOf(base: string, route: Route): string {
  return route.name === 'key' ? `${base}/keys/${encodeURIComponent(route.id)}` : `${base}/`;
}

/** The current route (from the address bar) and a way to move to another one. */
export function useRoute(base: string): [Route, (route: Route) => void] {
  const [route, setRoute] = useState(() => parse(base));
  useEffect(() => {
    const onPop = () => setRoute(parse(base));
    addEventListener('popstate', onPop);
    return () => removeEventListener('popstate', onPop);
  }, [base]);
  const navigate = (next: Route) => {
    history.pushState(null, '', hrefOf(base, next));
    setRoute(next);
    scrollTo(0, 0);
  };
  return [route, navigate];
}

/** Lets a plain click on a link move within the page; modified clicks keep the browser's behaviour. */
export function followLink(event: MouseEvent, go: () => void): void {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)
    return;
  event.preventDefault();
  go();
}
