/* udppoll ADDR FIRST_PORT N SECONDS: binds N UDP sockets and echoes every datagram, driven by one
 * WSAPoll loop (no IOCP). The counterpart of udpmany (tokio/mio, IOCP + AFD polls): under Wine 8
 * this one keeps answering where udpmany stalls. Build: x86_64-w64-mingw32-gcc -O2 -o udppoll.exe
 * udppoll.c -lws2_32 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    WSADATA wsa;
    int first, n, secs, i, echoed = 0;
    WSAPOLLFD *fds;
    DWORD end;
    if (argc != 5) return 2;
    first = atoi(argv[2]); n = atoi(argv[3]); secs = atoi(argv[4]);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    fds = calloc(n, sizeof *fds);
    for (i = 0; i < n; i++) {
        struct sockaddr_in a = {0};
        u_long nb = 1;
        SOCKET s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
        a.sin_family = AF_INET;
        a.sin_port = htons((u_short)(first + i));
        inet_pton(AF_INET, argv[1], &a.sin_addr);
        if (s == INVALID_SOCKET || bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
            printf("bind %d failed: %d\n", first + i, WSAGetLastError());
            return 1;
        }
        ioctlsocket(s, FIONBIO, &nb);
        fds[i].fd = s;
        fds[i].events = POLLRDNORM;
    }
    printf("ready: %d sockets\n", n);
    fflush(stdout);
    end = GetTickCount() + secs * 1000;
    while ((int)(end - GetTickCount()) > 0) {
        int r = WSAPoll(fds, n, 100);
        if (r <= 0) continue;
        for (i = 0; i < n; i++) {
            char buf[1500];
            struct sockaddr_storage peer;
            int plen, len;
            if (!(fds[i].revents & POLLRDNORM)) continue;
            for (;;) {
                plen = sizeof peer;
                len = recvfrom(fds[i].fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
                if (len < 0) break;
                if (sendto(fds[i].fd, buf, len, 0, (struct sockaddr *)&peer, plen) == len) echoed++;
            }
        }
    }
    printf("echoed %d\n", echoed);
    return 0;
}
